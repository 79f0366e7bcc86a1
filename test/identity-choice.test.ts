import { describe, expect, it } from "vitest";
import { chooseAzureIdentity } from "../src/client/identity-choice.ts";

const id = (sub: string, name: string) => `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
const A = id("s1", "id1");
const B = id("s1", "id2");
const C = id("s2", "id1");

// Teleport's Test_getAzureIdentityFromFlags cases.
describe("choosing the Azure identity", () => {
  it("takes the only one by default", () => expect(chooseAzureIdentity([A], undefined)).toBe(A));
  it("asks for a choice among several, listing them", () => expect(() => chooseAzureIdentity([B, A], undefined)).toThrow(/multiple Azure identities available, choose one with --azure-identity flag\n\nAvailable Azure identities:\n  .*id1\n  .*id2/));
  it("fails with none", () => expect(() => chooseAzureIdentity([], "x")).toThrow("no Azure identities available, check your permissions"));
  it("matches a full ID exactly, ignoring case, returning it as stored", () => {
    expect(chooseAzureIdentity([A, B], B)).toBe(B);
    expect(chooseAzureIdentity([A, B], B.toUpperCase())).toBe(B);
  });
  it("matches a unique short name, in any case", () => {
    expect(chooseAzureIdentity([A, B], "id2")).toBe(B);
    expect(chooseAzureIdentity([A, B], "ID2")).toBe(B);
  });
  it("refuses an ambiguous short name across subscriptions, listing the matches", () => {
    expect(() => chooseAzureIdentity([A, B, C], "id1")).toThrow(/provided identity "id1" is ambiguous, please specify full identity name[\s\S]*s1[\s\S]*s2/);
  });
  it("names what it could not find", () => expect(() => chooseAzureIdentity([A, B], "id3")).toThrow(/failed to find the identity matching "id3"/));
});
