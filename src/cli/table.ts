/**
 * The human form of a list: left-aligned columns under an upper-case header, two spaces apart, no
 * borders, so `grep` and `awk` still work on it.
 *
 * @module
 */
import { printable } from './printable.js'

/**
 * Renders `rows` (cells already text) under `header`; every cell is made {@link printable}, so a cell
 * from the database cannot break the layout or reach the terminal as control characters.
 */
export function renderTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const lines = [header, ...rows].map((row) => row.map(printable))
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
