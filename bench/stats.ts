// The benchmarks' summary statistics: every figure quoted as "median" is this one.

/** The median; with an even count, the mean of the two middle values (two rounds give their mean, not the higher). */
export function median(xs: readonly number[] | undefined): number {
  if (xs === undefined || xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The geometric mean (of ratios); NaN for none. */
export function geomean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}
