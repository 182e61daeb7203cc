// The published API, read from the built declarations (dist/) of every subpath in
// package.json's `exports`: how many names it exports, and that each one, and each member
// of the interfaces and classes it exports, carries TSDoc. Fails (exit 1) on a name or
// member without documentation, or on more names than the limit.
//
//   node .ci/api.mjs [--list]

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const LIMIT = 70;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const entries = Object.entries(pkg.exports)
  .filter(([, target]) => typeof target === "object" && target.types)
  .map(([subpath, target]) => ({ subpath, file: join(root, target.types) }));

const program = ts.createProgram(
  entries.map((e) => e.file),
  { strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.NodeNext },
);
const checker = program.getTypeChecker();

const undocumented = [];
const list = [];
let total = 0;

function documented(symbol) {
  if (symbol.getDocumentationComment(checker).length > 0) return true;
  // A documented overload or a `@see`-only doc still counts as documentation.
  return symbol.getJsDocTags(checker).length > 0;
}

/** Members of an exported interface or class that a user reads: own, public, named. */
function members(symbol) {
  const out = [];
  const decl = symbol.declarations?.[0];
  if (!decl) return out;
  const list =
    ts.isInterfaceDeclaration(decl) || ts.isClassDeclaration(decl)
      ? decl.members
      : ts.isTypeAliasDeclaration(decl) && ts.isTypeLiteralNode(decl.type)
        ? decl.type.members
        : undefined;
  if (list) {
    for (const m of list) {
      if (!m.name || ts.isPrivateIdentifier(m.name)) continue;
      const mods = ts.getCombinedModifierFlags(m);
      if (mods & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
      if (ts.isConstructorDeclaration(m)) continue;
      const ms = checker.getSymbolAtLocation(m.name);
      if (ms) out.push(ms);
    }
  }
  return out;
}

for (const { subpath, file } of entries) {
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`no declarations at ${file}: run npm run build first`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  total += exported.length;
  for (const sym of exported) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    list.push(`${subpath} ${sym.name}`);
    if (!documented(target)) undocumented.push(`${subpath}: ${sym.name}`);
    for (const m of members(target)) {
      // Members inherited from a documented declaration elsewhere count as documented.
      if (!documented(m)) undocumented.push(`${subpath}: ${sym.name}.${m.name}`);
    }
  }
}

if (process.argv.includes("--list")) console.log(list.join("\n"));
console.log(`published names: ${total} (limit ${LIMIT}) over ${entries.length} subpaths`);
if (undocumented.length > 0) {
  console.log(`without TSDoc (${undocumented.length}):\n  ${undocumented.join("\n  ")}`);
}
if (total > LIMIT || undocumented.length > 0) process.exit(1);
