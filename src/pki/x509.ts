// @peculiar/x509 needs the Reflect polyfill loaded before it; ESM evaluates
// imports in order, so every module takes x509 from here, never directly.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
