// The console's JSON error finder (crates/console/assets/json.js), which puts the workflow
// editor's caret on the first error: it must accept exactly what JSON.parse accepts and point
// at the character where the text stops being JSON.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { jsonError } from '../../../crates/console/assets/json.js';

test('valid JSON has no error', () => {
  for (const text of ['{}', '[]', ' [1, -0.5, 2e10, true, false, null] ', '{"a":"\\u00e9\\n\\"","b":{"c":[{}]}}', '"x"', '0']) {
    assert.equal(jsonError(text), null, text);
  }
});

test('an error is placed on the character where the text stops being JSON', () => {
  const cases = [
    ['{\n  "task_routing": {\n    "filters": [,]\n  }\n}', 3, 17],
    ['{"a":1,}', 1, 8],
    ['{"a" 1}', 1, 6],
    ['[1 2]', 1, 4],
    ['{\'a\': 1}', 1, 2],
    ['"abc', 1, 5],
    ['01', 1, 2],
    ['{"a":tru}', 1, 6],
    ['{"a":1} x', 1, 9],
    ['', 1, 1],
    ['{"a": "tab\there"}', 1, 11],
  ];
  for (const [text, line, column] of cases) {
    const err = jsonError(text);
    assert.ok(err, `${JSON.stringify(text)} is not JSON`);
    assert.throws(() => JSON.parse(text), undefined, 'and JSON.parse agrees');
    assert.match(err.message, new RegExp(`line ${line}, column ${column}$`), JSON.stringify(text));
    const before = text.slice(0, err.position).split('\n');
    assert.equal(before.length, line);
    assert.equal(before[before.length - 1].length + 1, column);
  }
});
