/**
 * What test/docs.test.ts reads in the documentation: links, heading anchors
 * (by GitHub's rules), and fenced code blocks with their info strings.
 */
import { readdirSync, statSync } from "node:fs";
import path from "node:path";

export interface Fence {
  info: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** The text outside fenced code blocks (fences blanked, so line numbers hold), and the blocks. */
export function splitFences(text: string): { prose: string; fences: Fence[] } {
  const prose: string[] = [];
  const fences: Fence[] = [];
  let open: { marker: string; info: string; line: number; body: string[] } | null = null;
  text.split("\n").forEach((line, i) => {
    const fence = /^(`{3,}|~{3,})\s*(.*)$/.exec(line);
    if (!open && fence) {
      open = { marker: fence[1], info: fence[2].trim(), line: i + 1, body: [] };
      prose.push("");
    } else if (open && fence && fence[1].startsWith(open.marker) && fence[2] === "") {
      fences.push({ info: open.info, body: open.body.join("\n"), line: open.line });
      open = null;
      prose.push("");
    } else if (open) {
      open.body.push(line);
      prose.push("");
    } else prose.push(line);
  });
  return { prose: prose.join("\n"), fences };
}

/** Inline links and images, `[text](target)`, outside code spans; with their line. */
export function links(prose: string): { target: string; line: number }[] {
  return prose.split("\n").flatMap((raw, i) => {
    const line = raw.replace(/`[^`]*`/g, "``");
    return [...line.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => ({ target: m[1], line: i + 1 }));
  });
}

/**
 * The anchors GitHub gives a file's headings: the heading's text (markup
 * removed), lower case, every character that is not a letter, digit, space,
 * `-` or `_` dropped, each space a `-`; a repeated anchor gets `-1`, `-2`...
 */
export function anchors(prose: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = m[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*]/g, "");
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, "").replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** Every .md file under `dir`, sorted. */
export function markdownFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = path.join(dir, name);
      return statSync(p).isDirectory() ? markdownFiles(p) : name.endsWith(".md") ? [p] : [];
    })
    .sort();
}
