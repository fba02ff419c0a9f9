/**
 * The human form of a list: left-aligned columns under an upper-case header, two spaces apart, no
 * borders, so `grep` and `awk` still work on it.
 *
 * @module
 */

/** Renders `rows` (cells already text) under `header`; a cell's newlines and tabs are shown escaped. */
export function renderTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const clean = (cell: string) => cell.replace(/[\n\r\t]/g, (c) => JSON.stringify(c).slice(1, -1))
  const lines = [header, ...rows].map((row) => row.map(clean))
  const widths = header.map((_, i) => Math.max(...lines.map((row) => (row[i] ?? '').length)))
  return lines
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}
