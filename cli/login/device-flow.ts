// RFC 8628 device authorization for `rolegate login`: ask for a code, tell the person where to enter it,
// poll until they approve, refuse, cancel or the code expires.
import { setTimeout as delay } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { LoginError, LoginErrorCode, peerText } from './errors.js';
import { toTokenResult } from './grants.js';
import type { TokenResult } from './grants.js';

/** Where the person is told what to do, what stops the wait early (Ctrl+C), and how to wait. */
export interface DeviceFlowIo {
  prompt(line: string): void;
  signal: AbortSignal;
  /** Waits `ms` or rejects when `signal` aborts (default: a timer that is cleared on abort). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
const DEFAULT_INTERVAL_SEC = 5;
// RFC 8628 §3.5: on slow_down "the interval MUST be increased by 5 seconds for this and all subsequent requests".
const SLOW_DOWN_STEP_SEC = 5;
// AbortSignal.timeout takes a 32-bit millisecond count (longer silently becomes 1 ms); no device code
// lives a day.
const MAX_WAIT_SEC = 24 * 3600;

const abortableDelay = (ms: number, signal: AbortSignal): Promise<void> => delay(ms, undefined, { signal });

/**
 * Runs the device flow. Our own poll loop rather than openid-client's: its wait notices an abort only
 * every 5 s, and Ctrl+C has to act at once and leave no timer behind.
 */
export async function deviceFlow(config: oidc.Configuration, params: Record<string, string>, io: DeviceFlowIo, nowSec: () => number): Promise<TokenResult> {
  const start = await oidc.initiateDeviceAuthorization(config, params);
  // Printed to a terminal: issuer-sent text is stripped of control characters (escape sequences).
  const code = peerText(start.user_code);
  io.prompt(`Open ${peerText(start.verification_uri)} and enter code ${code}`);
  if (typeof start.verification_uri_complete === 'string') io.prompt(`  (or open ${peerText(start.verification_uri_complete)})`);
  io.prompt('Waiting for approval...');

  const expiry = AbortSignal.timeout(Math.min(start.expires_in, MAX_WAIT_SEC) * 1000);
  const waitSignal = AbortSignal.any([io.signal, expiry]);
  const sleep = io.sleep ?? abortableDelay;
  let intervalSec = typeof start.interval === 'number' && start.interval > 0 ? start.interval : DEFAULT_INTERVAL_SEC;
  try {
    for (;;) {
      await sleep(intervalSec * 1000, waitSignal);
      try {
        return toTokenResult(await oidc.genericGrantRequest(config, DEVICE_CODE_GRANT, { device_code: start.device_code }), nowSec());
      } catch (err) {
        const error = err instanceof oidc.ResponseBodyError ? err.error : undefined;
        if (error === 'authorization_pending') continue;
        if (error === 'slow_down') {
          intervalSec += SLOW_DOWN_STEP_SEC;
          continue;
        }
        throw err;
      }
    }
  } catch (err) {
    if (io.signal.aborted) throw new LoginError(LoginErrorCode.cancelled, 'login cancelled', { cause: err });
    const error = err instanceof oidc.ResponseBodyError ? err.error : undefined;
    if (expiry.aborted || error === 'expired_token') {
      throw new LoginError(LoginErrorCode.expired, `code ${code} expired before it was approved; run rolegate login again`, { cause: err });
    }
    if (error === 'access_denied') throw new LoginError(LoginErrorCode.denied, `the request with code ${code} was denied at the issuer`, { cause: err });
    throw err;
  }
}
