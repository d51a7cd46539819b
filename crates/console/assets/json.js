// Where a JSON text goes wrong, for editors that put the caret on the error.

/**
 * A JSON text's first error, with its offset, or null when the text is JSON.
 *
 * The browser's own JSON.parse says what is wrong but, in current Chromium, no longer where;
 * so a small scanner of JSON's grammar (RFC 8259) finds the offset, and JSON.parse, run
 * after it, stays the judge of what is valid.
 */
export function jsonError(text) {
  let i = 0;
  const fail = (what) => {
    throw Object.assign(new Error(what), { position: i });
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1;
  };
  const literal = (word) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail('unexpected character');
  };
  const string = () => {
    i += 1;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i];
      if (c === '"') break;
      if (c < ' ') fail('control character in a string');
      if (c === '\\') {
        i += 1;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail('bad escape');
      }
      i += 1;
    }
    i += 1;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || !m[0] || m[0] === '-') fail('bad number');
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      ws();
      if (text[i] === '}') { i += 1; return; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a property name in double quotes');
        string();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i += 1;
        value();
        ws();
        if (text[i] === ',') { i += 1; continue; }
        if (text[i] === '}') { i += 1; return; }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i += 1;
      ws();
      if (text[i] === ']') { i += 1; return; }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') { i += 1; continue; }
        if (text[i] === ']') { i += 1; return; }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    fail(i >= text.length ? 'unexpected end of the text' : 'unexpected character');
  };
  let found = null;
  try {
    value();
    ws();
    if (i < text.length) fail('text after the JSON value');
  } catch (err) {
    found = { what: err.message, position: err.position };
  }
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    if (!found) return { message: err.message, position: null };
    const before = text.slice(0, found.position).split('\n');
    const where = `line ${before.length}, column ${before[before.length - 1].length + 1}`;
    return { message: `${found.what} at ${where}`, position: found.position };
  }
}
