/**
 * The SQL stores' error mapper (src/store/sql-errors.ts), fed errors shaped as the drivers throw them.
 * D1's are built as its binding builds them: `D1_ERROR: <message>` with the bare message as the cause
 * (the workerd tests in test/workers/ cannot make D1 fail transiently on demand).
 */
import { describe, expect, it } from 'vitest'
import { StatementError, StoreUnavailableError } from '../../src/index.js'
import { toStoreError } from '../../src/store/sql-errors.js'

const d1Error = (message: string) => new Error(`D1_ERROR: ${message}`, { cause: new Error(message) })

describe('toStoreError', () => {
  describe('D1', () => {
    // https://developers.cloudflare.com/d1/observability/debug-d1/#error-list: "Retry the operation".
    for (const message of [
      'Cannot resolve D1 DB due to transient issue on remote node.',
      'Replica disconnected from primary.',
      "Can't read from request stream because client disconnected.",
    ]) {
      it(`reports "${message}" as a retryable StoreUnavailableError (503 with Retry-After)`, () => {
        const error = toStoreError(d1Error(message))
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect(error).toMatchObject({ retryable: true, status: 503, retryAfterSeconds: 1 })
        expect(error.message).toContain(message)
      })
    }

    it('keeps a refused statement (a constraint, a syntax error) a StatementError, not retryable', () => {
      for (const [message, code] of [
        ['UNIQUE constraint failed: t.k: SQLITE_CONSTRAINT', 'SQLITE_CONSTRAINT'],
        ['near "SELEC": syntax error at offset 0: SQLITE_ERROR', 'SQLITE_ERROR'],
      ] as const) {
        const error = toStoreError(d1Error(message))
        expect(error, message).toBeInstanceOf(StatementError)
        expect(error, message).not.toBeInstanceOf(StoreUnavailableError)
        expect((error as StatementError).sqliteCode).toBe(code)
      }
    })

    it('keeps a statement error that quotes a transient phrase (a table named for it) not retryable', () => {
      const error = toStoreError(d1Error('no such table: replica disconnected from primary: SQLITE_ERROR'))
      expect(error).toBeInstanceOf(StatementError)
    })
  })
})
