/**
 * Consistent-hash routing affinity: which node of a cluster owns a key, identical on every runtime.
 *
 * @module
 */
export { ConsistentHashRing } from './consistent-hash-ring.js'
export {
  DEFAULT_NODE_WEIGHT,
  DEFAULT_VNODES,
  MAX_POINTS_PER_NODE,
  MAX_RING_NODES,
  MAX_VNODES,
  type AddNodeOptions,
  type BoundedLoadOptions,
  type ConsistentHashRingOptions,
  type LoadSource,
  type RingNode,
} from './options.js'
export { BoundedLoadBalancer, type BoundedLoadBalancerOptions } from './bounded-load-balancer.js'
export { DEFAULT_LOAD_FACTOR, boundedCapacity } from './capacity.js'
export { murmurHash3, murmurHash3Bytes } from './hash.js'
