// string-width for the single binary, loaded on first non-ASCII use.
// string-width builds an Intl.Segmenter and Unicode-property regular
// expressions when its module loads (about 35 ms of a 150 ms start-up), and
// yargs loads it for every command; help text is printable ASCII, whose width
// is its length, so most runs never need it.
let measure;

export default function stringWidth(input, options) {
  if (typeof input === "string" && /^[\x20-\x7e]*$/.test(input)) return input.length;
  measure ??= require("string-width").default; // the real package (see build-binary.mjs)
  return measure(input, options);
}
