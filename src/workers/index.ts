/**
 * `stateless-do/workers`: the Durable Object class form (imports `cloudflare:workers`, so workerd
 * only). Everything else is in the main entry, `stateless-do`, which never imports it.
 *
 * @module
 */
export { StatelessDurableObject, type TurnOptions } from './stateless-durable-object.js'
export { remoteErrorName } from './remote-errors.js'
