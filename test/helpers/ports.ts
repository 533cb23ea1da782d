// Free loopback ports chosen at run time (the demo's helper, under the name the tests use).
export { freeLoopbackPort as freePort } from '../../demo/ports.js';
