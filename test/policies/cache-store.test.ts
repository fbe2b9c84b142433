import t from 'tap'
import { MemoryCacheStore } from '../../src/policies/memory-cache-store.js'
import { cacheStoreTests } from './cache-store-contract.js'

cacheStoreTests(t, 'MemoryCacheStore', (limits) => new MemoryCacheStore(limits))
