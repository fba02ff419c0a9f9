/**
 * Every export of the package, and every public member of an exported class or interface, carries
 * TSDoc: the published `.d.ts` is what users read in their editor.
 */
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const ENTRY = join(import.meta.dirname, '../src/index.ts')

/** `name` for an undocumented export, `Class.member` for an undocumented member. */
export function undocumented(entry: string): string[] {
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  })
  const checker = program.getTypeChecker()
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!
  const missing: string[] = []
  const documented = (symbol: ts.Symbol): boolean =>
    (symbol.getDeclarations() ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0) ||
    symbol.getDocumentationComment(checker).length > 0
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
    const name = exported.getName()
    if (!documented(symbol)) missing.push(name)
    for (const declaration of symbol.getDeclarations() ?? []) {
      if (!ts.isClassDeclaration(declaration) && !ts.isInterfaceDeclaration(declaration)) continue
      for (const member of declaration.members) {
        if (ts.isConstructorDeclaration(member) || ts.isIndexSignatureDeclaration(member)) continue
        if (ts.isClassDeclaration(declaration)) {
          const modifiers = ts.getCombinedModifierFlags(member as ts.Declaration)
          if (modifiers & ts.ModifierFlags.Private) continue
          if (member.name && ts.isPrivateIdentifier(member.name)) continue
        }
        const memberName = member.name ? member.name.getText() : '(anonymous)'
        if (ts.getJSDocCommentsAndTags(member).length === 0) missing.push(`${name}.${memberName}`)
      }
    }
  }
  return [...new Set(missing)].sort()
}

describe('the public API', () => {
  it('documents every export and every public member with TSDoc', () => {
    expect(undocumented(ENTRY)).toEqual([])
  })
})
