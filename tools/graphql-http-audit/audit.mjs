// Runs graphql-http's server audits against `url` (default http://127.0.0.1:8000/graphql) and
// prints one line per audit. Exits 1 when any audit fails with an error or a warning (a MUST or
// SHOULD of the GraphQL over HTTP spec); notices (MAY) are listed but do not fail.
import { auditServer } from 'graphql-http';

const url = process.argv[2] ?? 'http://127.0.0.1:8000/graphql';
const results = await auditServer({ url });
let failed = 0;
const counts = { ok: 0, warn: 0, error: 0, notice: 0 };
for (const r of results) {
  counts[r.status] = (counts[r.status] ?? 0) + 1;
  let line = `${r.status.padEnd(6)} ${r.name}`;
  if (r.status !== 'ok') {
    line += ` — ${r.reason}`;
    if (r.status === 'warn' || r.status === 'error') failed += 1;
  }
  console.log(line);
}
console.log(`\n${counts.ok} ok, ${counts.warn} warnings, ${counts.error} errors, ${counts.notice} notices`);
process.exit(failed === 0 ? 0 : 1);
