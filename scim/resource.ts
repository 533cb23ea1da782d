// The SCIM resource surface the service uses: body parsing, rendering and projection, each in
// its own file under scim/resource/.
export { parseGroupBody, parseUserBody } from './resource/parse-body.js';
export { renderGroup, renderUser } from './resource/render.js';
export { parseProjection, project } from './resource/projection.js';
export type { Projection, ProjectionPath } from './resource/projection.js';
