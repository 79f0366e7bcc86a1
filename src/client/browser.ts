/**
 * Opens a URL in the user's browser: $BROWSER when set (as git and many
 * CLIs honour it), else the system's opener. Never waits for the browser;
 * false when nothing could be started (the caller prints the URL anyway).
 */
import { spawn } from "node:child_process";

export function openBrowser(url: string): Promise<boolean> {
  const [cmd, args] = opener(url);
  return new Promise((resolve) => {
    try {
      const child = spawn(cmd, args, { stdio: "ignore", detached: true });
      child.once("error", () => resolve(false));
      child.once("spawn", () => {
        child.unref();
        resolve(true);
      });
    } catch {
      resolve(false);
    }
  });
}

function opener(url: string): [string, string[]] {
  if (process.env.BROWSER) return [process.env.BROWSER, [url]];
  if (process.platform === "darwin") return ["open", [url]];
  if (process.platform === "win32") return ["rundll32", ["url.dll,FileProtocolHandler", url]];
  return ["xdg-open", [url]];
}
