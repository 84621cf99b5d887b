// Package jsonschema converts a JSON schema into a GBNF grammar (llama.cpp's
// grammar format, for sampler.Config.Grammar) whose sentences are JSON texts
// of values the schema accepts: a model sampled under the grammar writes
// only valid values. What the converter cannot express exactly it refuses
// with an *Error naming the keyword (errors.Is(err, ErrSchema)); it never
// returns a grammar that accepts a value the schema rejects.
//
//	g, err := jsonschema.Grammar(schema)      // one JSON document
//	opts := pipeline.GenerateOptions{Sampler: sampler.Config{Grammar: g}}
//
// Grammar is for one whole answer; a Builder puts the rules of several
// schemas into one grammar under rule names the caller embeds in rules of
// its own (tool calls whose arguments follow each tool's parameters).
//
// # What the grammar writes
//
// A subset of the valid values, in one form: object members in the order
// the schema lists its properties (those not required may be left out, no
// member beyond those listed or required), whitespace only where the space
// rule allows it (after a value, an opening bracket, a colon or a comma),
// integers as plain digits and bounded numbers as plain decimals, neither
// of them "-0", and at most
// 15 digits before any exponent, so that clients comparing float64 values
// (JavaScript, zod) agree with exact validators. Strings are valid UTF-8
// (no surrogates, no escape naming one, nothing above U+10FFFF); the
// sampler's grammar keeps the bytes of the whole answer valid UTF-8 too.
//
// # Keywords
//
// Supported:
//   - type (a name or a list); without type, the types whose keywords the
//     schema uses (none: any JSON value).
//   - enum and const, values of any type, filtered by type.
//   - integer and number: minimum, maximum, exclusiveMinimum,
//     exclusiveMaximum (numbers; draft 4's booleans too), written as exact
//     digit-wise ranges. A bound within ±10^15 needs at most 15
//     significant digits; numbers beyond ±(10^15−1) are not written (a
//     bound out there, like zod's ±(2^53−1) for int(), holds by itself).
//   - string: minLength and maxLength (maxLength above 4096 writes at most
//     4096); formats in forms that every common checker accepts (RFC 3339
//     and 4122, zod, Ajv, RFC 5321 and 1123 checks): date (month lengths,
//     leap years), time (with an offset), date-time (in UTC, "Z", as zod's
//     .datetime() wants by default), uuid (lower case, version 1 to 8, the
//     RFC 4122 variant), email (letters and digits, dot-separated, "@", up
//     to three lowercase labels and a top-level domain of 2 to 6 letters),
//     hostname and ipv4; pattern (below). A format with a pattern or
//     lengths beside it is the intersection of their automata. A string with
//     minLength, maxLength or pattern holds only characters of the Basic
//     Multilingual Plane, so that its length is the same counted in code
//     points (JSON Schema, Python, Ajv) and in UTF-16 units (JavaScript's
//     string.length, zod's .max()).
//   - pattern: ECMA-262 syntax, matching anywhere unless anchored, in the
//     subset JavaScript, Python's re and Go's regexp read alike: literals,
//     escapes, ".", classes with ranges and negation, \d \w \s \D \W \S
//     (ASCII meanings; the negated forms match ASCII only), groups,
//     alternation, * + ? {n} {n,} {n,m} (lazy too), ^ and $, and
//     lookaheads (?=…) (?!…) right after a leading ^ (as zod 4 writes for
//     email: intersections with automata and their complements); with
//     minLength and maxLength as well.
//   - object: properties, required (also without properties),
//     additionalProperties (false, true or a schema: without properties,
//     any keys with values of that schema).
//   - array: items, prefixItems (and draft 4's items array with
//     additionalItems), minItems, maxItems (above 1000 writes at most
//     1000), uniqueItems false (or with maxItems ≤ 1).
//   - allOf, merged into one schema (two patterns: both must match);
//     anyOf and oneOf, each branch merged with the keywords beside it (a
//     branch that allows no value is left out); oneOf only when its
//     branches cannot hold for one value (different types, or a required
//     property with distinct const or enum values).
//   - $ref to "#" and "#/..." JSON pointers ($defs, definitions; recursion
//     allowed), alone or with keywords beside it.
//   - Annotations (title, description, default, examples, $schema, $id,
//     $comment, deprecated, readOnly, writeOnly, content*, OpenAPI's
//     nullable and discriminator) and keywords no draft defines are ignored.
//
// Refused (an *Error naming the keyword): not, if/then/else,
// patternProperties, propertyNames, minProperties, maxProperties,
// dependentRequired, dependentSchemas, dependencies, contains, minContains,
// maxContains, uniqueItems true, multipleOf, unevaluatedProperties,
// unevaluatedItems, $dynamicRef, $recursiveRef, formats other than those
// above (uri, ipv6, duration, ...), patterns outside the subset (lookbehind, lookahead elsewhere,
// backreferences, \b, \p{…}, inline flags), $ref outside the document or to anchors, and combinations
// that cannot be merged (two different formats in one allOf, two tuple forms,
// anyOf on both sides of an allOf) or that allow no value.
package jsonschema
