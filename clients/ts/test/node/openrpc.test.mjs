// OpenRPC (docs/openrpc.md): the demo service's document and the
// `#[strand::service]` examples' (examples/calc.openrpc.json, kept fresh by
// rpc-macros/tests/openrpc.rs; examples/greeter.openrpc.json, the README
// quickstart's service, kept fresh by tests/quickstart_openrpc.rs) validate against the OpenRPC meta-schema
// (vendored in test/openrpc/); `strand codegen ts` of a running server gives
// the checked-in examples/demo-client.ts, which compiles under `tsc --strict`
// (with the client generated from the example's document) and calls every
// kind against `strand serve`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import WebSocket from 'ws';
import Ajv from 'ajv';
import { connect } from '../../dist/index.js';
import { startStrand, STRAND_BIN } from '../support/strand.mjs';
import { compileGenerated, EXPECTED_ROUND_TRIP } from '../support/codegen.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const readJson = (path) => JSON.parse(readFileSync(resolve(root, path), 'utf8'));

let server;

before(async () => {
  server = await startStrand(['--ws', '127.0.0.1:0']);
});

after(async () => {
  await server?.kill();
});

function metaSchemaValidator() {
  // The OpenRPC meta-schema refers to its JSON Schema meta-schema by id,
  // with and without the id's trailing slash.
  const ajv = new Ajv({ strict: false, validateSchema: false, allErrors: true });
  const jsonSchemaMeta = readJson('test/openrpc/json-schema-meta-schema.json');
  ajv.addSchema(jsonSchemaMeta);
  ajv.addSchema({ ...jsonSchemaMeta, $id: jsonSchemaMeta.$id.replace(/\/$/, '') });
  return ajv.compile(readJson('test/openrpc/meta-schema.json'));
}

test('the checked-in demo document is valid OpenRPC', () => {
  const validate = metaSchemaValidator();
  const doc = readJson('examples/demo.openrpc.json');
  assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
  assert.equal(doc.methods.length, 8);
});

test('the #[strand::service] example document is valid OpenRPC', () => {
  const validate = metaSchemaValidator();
  const doc = readJson('examples/calc.openrpc.json');
  assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
  assert.deepEqual(
    doc.methods.map((m) => [m.name, m['x-strand-kind']]),
    [['add', 'unary'], ['count', 'server'], ['sumAll', 'client'], ['chat', 'duplex'], ['upper', 'raw']],
  );
});

test('the quickstart example document is valid OpenRPC', () => {
  const validate = metaSchemaValidator();
  const doc = readJson('examples/greeter.openrpc.json');
  assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
  assert.deepEqual(
    doc.methods.map((m) => [m.name, m['x-strand-kind']]),
    [['hello', 'unary'], ['count', 'server']],
  );
});

test('the meta-schema check can fail: a method without a result is refused', () => {
  const validate = metaSchemaValidator();
  const doc = readJson('examples/demo.openrpc.json');
  delete doc.methods[0].result;
  doc.methods[1].params = 'nope';
  assert.equal(validate(doc), false);
});

test('strand describe of a running server gives the checked-in document, valid OpenRPC', () => {
  const described = JSON.parse(execFileSync(STRAND_BIN, ['describe', server.ws], { encoding: 'utf8' }));
  const validate = metaSchemaValidator();
  assert.ok(validate(described), JSON.stringify(validate.errors, null, 2));
  assert.deepEqual(described, readJson('examples/demo.openrpc.json'));
});

test('codegen from the running server gives the checked-in client', () => {
  const generated = execFileSync(STRAND_BIN, ['codegen', 'ts', server.ws], { encoding: 'utf8' });
  assert.equal(generated, readFileSync(resolve(root, 'examples/demo-client.ts'), 'utf8'));
});

test('the generated client compiles under tsc --strict and calls every kind', async () => {
  const { roundTrip } = await import(compileGenerated());
  const client = await connect(server.ws, { WebSocket });
  try {
    assert.deepEqual(await roundTrip(client), EXPECTED_ROUND_TRIP);
  } finally {
    await client.close(2000);
  }
});
