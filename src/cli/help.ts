/**
 * Every help text of the CLI, one per command plus the overview.
 *
 * @module
 */

const GLOBAL_OPTIONS = `Database options (every command):
  --db <url>            libSQL URL: file:path, libsql://..., http(s)://..., or a bare path (a file).
                        Default: $STATELESS_DO_DB. A local D1 database of \`wrangler dev\` is an SQLite
                        file and opens by path: --db .wrangler/state/v3/d1 (a directory holding exactly
                        one *.sqlite file is searched for it).
  --auth-token <token>  For libsql:// and http(s):// databases. Default: $STATELESS_DO_AUTH_TOKEN, then
                        $LIBSQL_AUTH_TOKEN (prefer the variables: a flag shows in the process list).
  --table <name>        The lock table. Default: do_locks.
  --object-table <name> The object storage table. Default: do_storage beside do_locks, <table>_storage
                        beside any other lock table.

Output options:
  --json                One JSON document on stdout (for scripts) instead of a table. Text is given
                        exactly; tables and messages show control characters as escapes (\\x1b, \\n).
  --verbose             On a database error, print the stack and its causes.
  -h, --help            This help.`

/** Help per command, and `''` for the overview. */
export const HELP: Readonly<Record<string, string>> = {
  '': `stateless-do: inspect and repair the lease table of stateless-do (do_locks) and its object storage.

Usage: stateless-do <command> [options]

Commands:
  list                       Current lease holders (do_id, node, token, acquired, expires in).
  show <doId>                One object's lease row and its storage keys.
  force-release <doId>       Free a held lease, whoever holds it (the token stays).
  prune --older-than <dur>   Remove rows nobody has held for longer than <dur> (alias: vacuum).
  help [command]             Help for one command.

Read commands (list, show) never write. No command creates or changes tables: the application's
ensureSchema() does that.

${GLOBAL_OPTIONS}

Exit codes: 0 done, 1 failed (database error, no such file or table), 2 bad usage (nothing was opened).`,

  list: `Usage: stateless-do list [--node <nodeId>] [--limit <n>] [options]

The leases held now (unexpired on the database's clock), ordered by do_id. Held rows the library
cannot read (corrupt) are named after the count instead, any node's even with --node (a corrupt row's
node cannot be trusted); show and force-release accept them.

  --node <nodeId>   Only leases held by this node.
  --limit <n>       At most n rows, 1 to 100000. Default: 1000.

${GLOBAL_OPTIONS}`,

  show: `Usage: stateless-do show <doId> [--values] [--prefix <p>] [--limit <n>] [options]

One object's lease row (held or not, node, token, times; or what makes it corrupt) and its storage keys
with the size of each encoded value, in key order. An id starting with "-" goes after "--": show -- -odd-id.

  --values          Also decode each value (as this.storage.get() would return it).
  --prefix <p>      Only keys starting with p.
  --limit <n>       At most n keys, 1 to 100000. Default: 100.

${GLOBAL_OPTIONS}`,

  'force-release': `Usage: stateless-do force-release <doId> [options]

Frees the lease on <doId> whoever holds it. The token stays, so the next acquire gets token + 1 and the
evicted holder's fenced writes and flushes are refused. A lease that is not held is left as it is (exit
code 0: the lease is free either way; the output says which). A held row the library cannot read
(corrupt: broken JSON, text in an integer column) is freed too, and the output says what is wrong
with it.

${GLOBAL_OPTIONS}`,

  prune: `Usage: stateless-do prune --older-than <duration> [--limit <n>] [--once] [options]
       stateless-do vacuum ...   (the same)

Removes lease rows nobody has held for longer than <duration> (counted from the lease's end, or from
its grant for a released lease), and hand-over requests no lease can honour any more. Held rows are never removed, and
tokens keep increasing (the table remembers the highest token it removed). Storage rows are not touched.

  --older-than <d>  Required. Whole numbers with units ms, s, m, h, d, w: 500ms, 30m, 12h, 1d, 1h30m.
                    0 removes every row nobody holds.
  --limit <n>       Rows per transaction, 1 to 100000. Default: 1000.
  --once            One transaction only (default: repeat while a transaction removed --limit rows).

${GLOBAL_OPTIONS}`,
}
