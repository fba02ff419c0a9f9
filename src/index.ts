export * from './errors.js'
export type { Clock } from './clock.js'
export { systemClock } from './clock.js'
export * from './store/index.js'
