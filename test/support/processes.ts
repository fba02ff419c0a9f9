/**
 * Real OS processes for tests: bundle a TypeScript entry with esbuild, run it with this Node binary, and
 * talk to it in JSON lines. Written for the multi-process lock test and reused by the chaos suite
 * (SIGKILL mid-lease, SIGSTOP past the TTL, restarts), so it keeps every child it spawns reachable for
 * cleanup and says who did what when something times out.
 *
 * The protocol, both directions one JSON object per line with a string `type`:
 * - child -> parent on stdout (`childChannel().send`); anything the child wants a human to read goes to
 *   stderr, which the parent keeps for failure messages;
 * - parent -> child on stdin (`ChildHandle.send`), e.g. `{ "type": "go" }` to start every child at once.
 * A child exits when its stdin closes: the parent is gone, and an orphan would hold the database open.
 *
 * This module is imported by parents (vitest) and bundled into children; the child half uses only
 * `node:` built-ins, and esbuild is loaded lazily so it never ends up in a child bundle.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { basename, extname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** One protocol line: any JSON object with a string `type`. */
export interface Message {
  type: string
}

// ---------------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------------

/**
 * The repository root (parent side only: inside a bundle this module's URL is the bundle's): bundles go
 * below it so `node` resolves their external packages from the repo's node_modules.
 */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface BuildOptions {
  /**
   * Packages left as runtime imports (resolved from the repo's node_modules). Native or large packages
   * belong here; `@libsql/client` and `esbuild` are always external.
   */
  external?: string[]
}

export interface BuiltEntry {
  /** The bundled `.mjs` to pass to {@link ProcessGroup.spawn}. */
  file: string
  /** Removes the bundle's directory. */
  dispose(): void
}

/**
 * Bundles a TypeScript entry (and the `src/` it imports) into one ESM file under `<repo>/.tmp/processes/`.
 * Every call gets its own directory, so parallel test files can build the same entry without racing.
 */
export async function buildEntry(entry: string | URL, options: BuildOptions = {}): Promise<BuiltEntry> {
  const entryPath = entry instanceof URL ? fileURLToPath(entry) : entry
  const { build } = await import('esbuild')
  const root = join(REPO_ROOT, '.tmp', 'processes')
  mkdirSync(root, { recursive: true })
  const outdir = mkdtempSync(join(root, `${basename(entryPath, extname(entryPath))}-`))
  try {
    await build({
      entryPoints: [entryPath],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outdir,
      outExtension: { '.js': '.mjs' },
      external: ['@libsql/client', 'esbuild', ...(options.external ?? [])],
      sourcemap: 'inline',
      logLevel: 'silent',
    })
  } catch (error) {
    rmSync(outdir, { recursive: true, force: true })
    throw error
  }
  return {
    file: join(outdir, `${basename(entryPath, extname(entryPath))}.mjs`),
    dispose: () => rmSync(outdir, { recursive: true, force: true }),
  }
}

export interface SpawnOptions {
  /** Shown in failure messages; defaults to the file name and a counter. */
  name?: string
  args?: string[]
  /** Merged over the parent's environment. */
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Node flags, e.g. `['--enable-source-maps']` (the default). */
  nodeArgs?: string[]
  /** SIGKILL the child after this long (a hung child must not hang the suite). Default 60 s. */
  timeoutMs?: number
}

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
  /** True if the child was killed by its `timeoutMs` watchdog. */
  timedOut: boolean
}

/** How much of a child's stderr to quote in error messages. */
const STDERR_TAIL = 4_000

/** A running (or finished) child. Messages are buffered, so waiting for one never misses it. */
export class ChildHandle {
  readonly name: string
  readonly pid: number
  /** Every protocol message received so far, in order. */
  readonly messages: Message[] = []
  /** Stdout lines that were not protocol messages (a child should not print those; kept to debug it). */
  readonly strayStdout: string[] = []
  /** Everything the child wrote to stderr. */
  stderr = ''
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>
  #exit: ExitInfo | undefined
  readonly #process: ChildProcess
  readonly #waiters = new Set<() => void>()

  constructor(child: ChildProcess, name: string, timeoutMs: number) {
    // Spawn failures (and kill errors) arrive as 'error' events; unhandled, they would crash the runner.
    child.on('error', (error) => {
      this.stderr += `[${name}: ${error.message}]\n`
    })
    if (child.pid === undefined) throw new Error(`could not spawn ${name}`)
    this.#process = child
    this.name = name
    this.pid = child.pid
    let timedOut = false
    const watchdog = setTimeout(() => {
      timedOut = true
      this.kill('SIGKILL')
    }, timeoutMs)
    watchdog.unref()
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': only then has all of stdout been read, including the final result line.
      child.once('close', (code, signal) => {
        clearTimeout(watchdog)
        this.#exit = { code, signal, timedOut }
        resolve(this.#exit)
        this.#wake()
      })
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
      const message = parseMessage(line)
      if (message) this.messages.push(message)
      else this.strayStdout.push(line)
      this.#wake()
    })
    // The child may die before reading what we wrote; that is reported through `exited`, not as EPIPE.
    child.stdin!.on('error', () => {})
  }

  /** Exit status once the process has exited. */
  get exit(): ExitInfo | undefined {
    return this.#exit
  }

  /** Writes one protocol line to the child's stdin. */
  send<T extends Message>(message: T): void {
    if (this.#exit || !this.#process.stdin!.writable) return
    this.#process.stdin!.write(`${JSON.stringify(message)}\n`)
  }

  /**
   * The first message of `type` (already received or still to come). Rejects, quoting the child's
   * stderr, if the child exits first or nothing arrives within `timeoutMs`.
   */
  waitFor<T extends Message = Message>(type: string, timeoutMs = 30_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = this.messages.find((m) => m.type === type)
        if (found) return done(() => resolve(found as T))
        if (this.#exit) return done(() => reject(new Error(`${this.describe()} exited before sending "${type}"`)))
      }
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.describe()} sent no "${type}" within ${timeoutMs} ms`))),
        timeoutMs,
      )
      const done = (settle: () => void) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        settle()
      }
      this.#waiters.add(check)
      check()
    })
  }

  /** Sends `signal` to this child by pid; does nothing once it has exited. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.#exit) this.#process.kill(signal)
  }

  /** Freezes the child (a GC pause or a VM stall, as far as its leases are concerned). */
  pause(): void {
    this.kill('SIGSTOP')
  }

  resume(): void {
    this.kill('SIGCONT')
  }

  /** Closes stdin: the child's cue that the parent is gone (see {@link childChannel}). */
  closeStdin(): void {
    this.#process.stdin!.end()
  }

  /** For assertion messages: who, how it ended, and the tail of its stderr. */
  describe(): string {
    const exit = this.#exit
    const status = !exit
      ? 'running'
      : exit.timedOut
        ? 'killed by its watchdog'
        : exit.signal
          ? `killed by ${exit.signal}`
          : `exit code ${exit.code}`
    const tail = this.stderr.length > STDERR_TAIL ? `...${this.stderr.slice(-STDERR_TAIL)}` : this.stderr
    return `child ${this.name} (pid ${this.pid}, ${status})${tail.trim() ? `\n--- stderr ---\n${tail.trimEnd()}` : ''}`
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter()
  }
}

/**
 * The children of one test file. Call {@link killAll} in `afterEach`/`afterAll`: a failed assertion or a
 * timeout must not leave processes hammering the next test's database.
 */
export class ProcessGroup {
  readonly #children: ChildHandle[] = []
  #spawned = 0

  /** Runs `node <nodeArgs> file <args>` with piped stdio. */
  spawn(file: string, options: SpawnOptions = {}): ChildHandle {
    const name = options.name ?? `${basename(file)}#${++this.#spawned}`
    const child = spawn(
      process.execPath,
      [...(options.nodeArgs ?? ['--enable-source-maps']), file, ...(options.args ?? [])],
      {
        cwd: options.cwd ?? REPO_ROOT,
        env: { ...process.env, ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    )
    const handle = new ChildHandle(child, name, options.timeoutMs ?? 60_000)
    this.#children.push(handle)
    return handle
  }

  get children(): readonly ChildHandle[] {
    return this.#children
  }

  /** Sends `message` to every running child, back to back, so they start as close together as possible. */
  broadcast(message: Message): void {
    for (const child of this.#children) child.send(message)
  }

  /**
   * Waits for every child to exit. Rejects, describing the children concerned, if one outlives
   * `timeoutMs` or (unless `requireSuccess` is false, e.g. when the test kills children) exits non-zero.
   */
  async waitForAll({
    timeoutMs = 30_000,
    requireSuccess = true,
  }: { timeoutMs?: number; requireSuccess?: boolean } = {}): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const running = this.#children.filter((c) => !c.exit).map((c) => c.describe())
        reject(new Error(`children still running after ${timeoutMs} ms:\n${running.join('\n')}`))
      }, timeoutMs)
    })
    try {
      await Promise.race([Promise.all(this.#children.map((c) => c.exited)), timeout])
    } finally {
      clearTimeout(timer)
    }
    const failed = this.#children.filter((c) => c.exit!.code !== 0)
    if (requireSuccess && failed.length)
      throw new Error(`children failed:\n${failed.map((c) => c.describe()).join('\n')}`)
  }

  /** SIGKILLs every child still running (each by its own pid) and waits until they are gone. */
  async killAll(): Promise<void> {
    for (const child of this.#children) child.kill('SIGKILL')
    await Promise.all(this.#children.map((c) => c.exited))
    this.#children.length = 0
  }
}

// ---------------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------------

export interface ChildChannel {
  /** Writes one protocol line to stdout. */
  send<T extends Message>(message: T): void
  /** The next message of `type` from the parent (buffered: one sent before this call is not lost). */
  receive<T extends Message = Message>(type: string): Promise<T>
}

/** Exit code of a child whose parent went away (its stdin closed). */
export const ORPHANED_EXIT_CODE = 86

let channel: ChildChannel | undefined

/**
 * The child's end of the protocol. Reading stdin keeps the child alive only while it waits in
 * `receive`; when stdin closes the child exits with {@link ORPHANED_EXIT_CODE}.
 */
export function childChannel(): ChildChannel {
  if (channel) return channel
  const inbox: Message[] = []
  const waiting = new Map<string, Array<(m: Message) => void>>()
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  lines.on('line', (line) => {
    const message = parseMessage(line)
    if (!message) return
    const waiter = waiting.get(message.type)?.shift()
    if (waiter) waiter(message)
    else inbox.push(message)
    if (![...waiting.values()].some((w) => w.length)) process.stdin.unref?.()
  })
  lines.on('close', () => process.exit(ORPHANED_EXIT_CODE))
  process.stdin.unref?.()
  channel = {
    send(message) {
      process.stdout.write(`${JSON.stringify(message)}\n`)
    },
    receive<T extends Message>(type: string) {
      const index = inbox.findIndex((m) => m.type === type)
      if (index >= 0) return Promise.resolve(inbox.splice(index, 1)[0] as T)
      process.stdin.ref?.()
      return new Promise<T>((resolve) => {
        const list = waiting.get(type) ?? []
        list.push((m) => resolve(m as T))
        waiting.set(type, list)
      })
    },
  }
  return channel
}

/**
 * The child's configuration: the parent passes one JSON argument (see {@link configArg}), which keeps
 * argument parsing out of every fixture.
 */
export function childConfig<T>(): T {
  const raw = process.argv[2]
  if (raw === undefined) throw new Error('expected the configuration as a JSON argument')
  return JSON.parse(raw) as T
}

/** Encodes a configuration for {@link childConfig}. */
export function configArg(config: unknown): string[] {
  return [JSON.stringify(config)]
}

function parseMessage(line: string): Message | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const value: unknown = JSON.parse(line)
    if (value !== null && typeof value === 'object' && typeof (value as Message).type === 'string')
      return value as Message
  } catch {
    // Not protocol: a stray line.
  }
  return undefined
}
