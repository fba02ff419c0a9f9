/**
 * The HTTP form of every library error (what StatelessDO answers when one ends a request): one table,
 * as the README's "Answers from fetch" documents it.
 */
import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  CorruptLockRowError,
  DuplicateNodeError,
  EmptyRingError,
  InvalidArgumentError,
  LockContendedError,
  LockError,
  LockLostError,
  ShutdownError,
  StaleFencingTokenError,
  StatementError,
  StoreUnavailableError,
  UnknownNodeError,
  type LockErrorCode,
} from '../../src/index.js'

interface Row {
  error: LockError
  code: LockErrorCode
  status: number
  body: Record<string, unknown>
  retryAfter: string | null
}

const table: Row[] = [
  {
    error: new LockContendedError('room-1', 12_345, { nodeId: 'node-b', fencingToken: 4 }),
    code: 'LOCK_CONTENDED',
    status: 503,
    body: { error: 'locked', doId: 'room-1', holder: 'node-b', retryAfterMs: 12_345 },
    retryAfter: '13',
  },
  {
    error: new StoreUnavailableError('lock store request failed: fetch failed', { retryable: true }),
    code: 'STORE_UNAVAILABLE',
    status: 503,
    body: { error: 'store_unavailable', doId: 'room-1' },
    retryAfter: '1',
  },
  {
    error: new StoreUnavailableError('lock store request failed: LIBSQL_CLIENT_CLOSED', { retryable: false }),
    code: 'STORE_UNAVAILABLE',
    status: 500,
    body: { error: 'store_failed', doId: 'room-1' },
    retryAfter: null,
  },
  {
    error: new StatementError('UNIQUE constraint failed: rooms.name', {
      sqliteCode: 'SQLITE_CONSTRAINT',
      statementIndex: 1,
    }),
    code: 'STATEMENT_FAILED',
    status: 500,
    body: { error: 'statement_failed', doId: 'room-1' },
    retryAfter: null,
  },
  {
    error: new ShutdownError(),
    code: 'SHUTDOWN',
    status: 503,
    body: { error: 'store_unavailable', doId: 'room-1' },
    retryAfter: '1',
  },
  {
    error: new CorruptLockRowError('room-1', 'fencing_token', 'is not an integer'),
    code: 'CORRUPT_LOCK_ROW',
    status: 503,
    body: { error: 'corrupt_lock_row', doId: 'room-1', column: 'fencing_token' },
    retryAfter: '1',
  },
  {
    error: new LockLostError('room-1', 3, 'released'),
    code: 'LOCK_LOST',
    status: 503,
    body: { error: 'lease_lost', doId: 'room-1' },
    retryAfter: '1',
  },
  {
    error: new StaleFencingTokenError('room-1', 3, 4),
    code: 'STALE_FENCING_TOKEN',
    status: 503,
    body: { error: 'lease_lost', doId: 'room-1' },
    retryAfter: '1',
  },
  {
    error: new InvalidArgumentError('statements[0].args[1]', 'expected a finite number, got NaN'),
    code: 'INVALID_ARGUMENT',
    status: 500,
    body: { error: 'internal_error', doId: 'room-1' },
    retryAfter: null,
  },
  {
    error: new EmptyRingError(),
    code: 'EMPTY_RING',
    status: 500,
    body: { error: 'internal_error', doId: 'room-1' },
    retryAfter: null,
  },
  {
    error: new DuplicateNodeError('node-a'),
    code: 'DUPLICATE_NODE',
    status: 500,
    body: { error: 'internal_error', doId: 'room-1' },
    retryAfter: null,
  },
  {
    error: new UnknownNodeError('node-a'),
    code: 'UNKNOWN_NODE',
    status: 500,
    body: { error: 'internal_error', doId: 'room-1' },
    retryAfter: null,
  },
]

describe('LockError HTTP form', () => {
  it.each(table)('answers $error.name as $status $body.error', async ({ error, code, status, body, retryAfter }) => {
    expect(error).toBeInstanceOf(LockError)
    expect(error.code).toBe(code)
    expect(error.status).toBe(status)
    const response = error.toResponse('room-1')
    expect(response.status).toBe(status)
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(response.headers.get('Retry-After')).toBe(retryAfter)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual(body)
    expect(error.toBody('room-1')).toEqual(body)
    // The message is for the server's logs, never the client.
    expect(text).not.toContain(error.message)
  })

  it("answers with the error's own doId when none is given, and without one when it has none", () => {
    expect(new LockLostError('room-9', 1, 'released').toBody()).toEqual({ error: 'lease_lost', doId: 'room-9' })
    expect(new ShutdownError().toBody()).toEqual({ error: 'store_unavailable' })
  })

  it('sends a given Retry-After for contention, and at least 1 s by default', () => {
    expect(new LockContendedError('r', 20).toResponse().headers.get('Retry-After')).toBe('1')
    expect(new LockContendedError('r', 29_990, undefined, { retryAfterSeconds: 1 }).retryAfterSeconds).toBe(1)
    expect(new LockContendedError('r', 1).toBody()).toEqual({
      error: 'locked',
      doId: 'r',
      holder: null,
      retryAfterMs: 1,
    })
  })

  it('narrows code to the literal of each class', () => {
    expectTypeOf(new LockLostError('r', 1, 'x').code).toEqualTypeOf<'LOCK_LOST'>()
    expectTypeOf(new InvalidArgumentError('a', 'b').code).toEqualTypeOf<'INVALID_ARGUMENT'>()
    expectTypeOf(new LockError('SHUTDOWN', 'x').code).toEqualTypeOf<LockErrorCode>()
    // Every code of the lock layer has a row above (the object layer's are tested with its errors).
    const objectLayer = ['QUEUE_FULL', 'TURN_TIMEOUT', 'ACTIVATION_ENDED']
    const codes: Record<LockErrorCode, true> = {
      QUEUE_FULL: true,
      TURN_TIMEOUT: true,
      ACTIVATION_ENDED: true,
      INVALID_ARGUMENT: true,
      STALE_FENCING_TOKEN: true,
      STORE_UNAVAILABLE: true,
      STATEMENT_FAILED: true,
      CORRUPT_LOCK_ROW: true,
      LOCK_LOST: true,
      SHUTDOWN: true,
      EMPTY_RING: true,
      DUPLICATE_NODE: true,
      UNKNOWN_NODE: true,
      LOCK_CONTENDED: true,
    }
    const lockLayer = Object.keys(codes).filter((c) => !objectLayer.includes(c))
    expect(new Set(table.map((row) => row.code))).toEqual(new Set(lockLayer))
  })

  it('names the refused statement and its SQLite code once in the message, and keeps them as fields', () => {
    const error = new StatementError('UNIQUE constraint failed: rooms.name', {
      sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE',
      statementIndex: 1,
    })
    expect(error.message).toBe('statements[1] failed (SQLITE_CONSTRAINT_UNIQUE): UNIQUE constraint failed: rooms.name')
    expect(error).toMatchObject({ sqliteCode: 'SQLITE_CONSTRAINT_UNIQUE', statementIndex: 1 })
    expect(new StatementError('no such table: rooms').message).toBe('statement failed: no such table: rooms')
  })

  it('keeps code and status through structured cloning (own fields, not getters)', () => {
    const clone = structuredClone({ ...new StoreUnavailableError('x') })
    expect(clone).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, retryable: true })
  })
})
