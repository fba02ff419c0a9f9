export { StatelessDO } from './stateless-do.js'
export type { StatelessDOContext, StatelessDOPhase } from './stateless-do.js'
