/**
 * The HTML tearsheet (`GET /backtests/{id}/report`) needs the bearer token, so the browser
 * cannot simply follow a link to it: the page fetches it and opens it from a blob URL. A blob
 * document has the app's origin, so before it is opened the tearsheet gets a Content-Security-
 * Policy that allows no script at all (the API sends it without scripts, and serves it with the
 * same policy plus `sandbox`): nothing in it could read the tokens in localStorage.
 */
export const TEARSHEET_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

export function lockedDown(html: string): string {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${TEARSHEET_CSP}">`;
  const head = /<head(\s[^>]*)?>/i.exec(html);
  if (head) return html.slice(0, head.index + head[0].length) + meta + html.slice(head.index + head[0].length);
  // no <head>: a meta before anything else still applies to what follows
  const doctype = /^\s*<!doctype[^>]*>/i.exec(html);
  const at = doctype ? doctype[0].length : 0;
  return html.slice(0, at) + meta + html.slice(at);
}

/** The document's <title>, for showing what was opened. */
export function titleOf(html: string): string | null {
  const m = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html);
  if (!m) return null;
  const el = document.createElement("textarea");
  el.innerHTML = m[1]!; // decodes entities without running anything
  return el.value.trim() || null;
}
