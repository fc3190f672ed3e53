// Writes the browser files of GraphiQL that the big-market binary serves at /graphiql
// (`include_bytes!` in api/src/graphiql.rs) into api/assets/graphiql/vendor/, from the versions
// pinned in package-lock.json: `npm ci && npm run build`, then commit the vendor directory.
//
// * react / react-dom: their production UMD builds, as published;
// * graphiql: its UMD build (it bundles @graphiql/react, @graphiql/toolkit, graphql, graphql-ws
//   and CodeMirror 5; React and ReactDOM come from the two files above), without its source map
//   comment;
// * graphiql's stylesheet, minified, keeping only the latin subsets of its embedded fonts
//   (Roboto, Fira Code): the other subsets are most of its size, and their characters fall back
//   to the system fonts;
// * LICENSES.txt and README.md: versions and licenses of what the files contain.
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const out = join(here, '../../api/assets/graphiql/vendor');

const pkg = (name) => JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
const read = (name, file) => readFileSync(join(modules, name, file), 'utf8');

/** `@font-face` rules whose unicode-range does not cover basic latin are dropped. */
function latinFontsOnly(css) {
  let kept = 0;
  let dropped = 0;
  const result = css.replace(/@font-face\s*\{[^}]*\}/g, (face) => {
    const range = /unicode-range:([^;}]*)/.exec(face);
    if (!range || /U\+0000-00FF/i.test(range[1])) {
      kept += 1;
      return face;
    }
    dropped += 1;
    return '';
  });
  if (kept === 0) throw new Error('no latin @font-face left: has graphiql.min.css changed?');
  return { css: result, kept, dropped };
}

function withoutSourceMap(js) {
  return js.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const shipped = [
  { name: 'react', file: 'react.production.min.js', from: 'umd/react.production.min.js' },
  { name: 'react-dom', file: 'react-dom.production.min.js', from: 'umd/react-dom.production.min.js' },
  { name: 'graphiql', file: 'graphiql.min.js', from: 'graphiql.min.js', edit: withoutSourceMap },
];
const sizes = {};
for (const s of shipped) {
  const text = (s.edit ?? ((x) => x))(read(s.name, s.from));
  writeFileSync(join(out, s.file), text);
  sizes[s.file] = Buffer.byteLength(text);
}
const fonts = latinFontsOnly(read('graphiql', 'graphiql.min.css'));
const css = (await transform(fonts.css, { loader: 'css', minify: true, legalComments: 'none' })).code;
if (/url\((?!\s*["']?data:)/.test(css) || /@import/.test(css)) {
  throw new Error('graphiql.min.css refers to another file or origin: the page CSP would block it');
}
writeFileSync(join(out, 'graphiql.min.css'), css);
sizes['graphiql.min.css'] = Buffer.byteLength(css);
shipped.push({ name: 'graphiql', file: 'graphiql.min.css', from: 'graphiql.min.css' });

// Licenses: the full texts of the shipped packages, then every package of graphiql's tree.
const licenseText = (name) => {
  const dir = join(modules, name);
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  return file ? readFileSync(join(dir, file), 'utf8').trim() : `(no license file; package.json says ${pkg(name).license})`;
};
const tree = [];
const walk = (dir, scope = '') => {
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@') && !scope) {
      walk(join(dir, entry), entry + '/');
      continue;
    }
    const name = scope + entry;
    if (name === 'esbuild' || name.startsWith('@esbuild/')) continue; // the build tool, not shipped
    if (existsSync(join(modules, name, 'package.json'))) {
      const p = pkg(name);
      tree.push(`${p.name}@${p.version}: ${p.license ?? 'see its package'}`);
    }
  }
};
walk(modules);
tree.sort();
const direct = ['react', 'react-dom', 'graphiql'];
writeFileSync(
  join(out, 'LICENSES.txt'),
  [
    ...direct.map((n) => `${'='.repeat(72)}\n${n}@${pkg(n).version}\n${'='.repeat(72)}\n${licenseText(n)}\n`),
    `${'='.repeat(72)}\nThe packages installed with them (graphiql.min.js bundles its dependencies)\n${'='.repeat(72)}`,
    ...tree,
    '',
  ].join('\n'),
);
const rows = shipped.map(
  (s) => `| \`${s.file}\` | ${s.name} ${pkg(s.name).version} (\`${s.from}\`) | ${pkg(s.name).license} | ${sizes[s.file]} |`,
);
writeFileSync(
  join(out, 'README.md'),
  `# GraphiQL's browser files (generated)

Written by \`tools/graphiql/build.mjs\` (\`npm ci && npm run build\` there) from the versions pinned in
\`tools/graphiql/package-lock.json\`; do not edit by hand. The binary embeds them (api/src/graphiql.rs).

| File | From | License | Bytes |
|---|---|---|---|
${rows.join('\n')}

\`graphiql.min.css\` keeps ${fonts.kept} of the ${fonts.kept + fonts.dropped} embedded \`@font-face\` subsets (the latin ones).
License texts, and the license of every package in graphiql's dependency tree: \`LICENSES.txt\`.
`,
);
for (const [file, size] of Object.entries(sizes)) console.log(`${file}: ${size} bytes`);
