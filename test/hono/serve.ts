/** A fetch handler on a real port, for tests that need real hosts and ports (or a browser). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * Serves a fetch handler with node:http on 127.0.0.1 (a free port by default): the request
 * in as a Request (its URL with the Host it came with), the Response out.
 */
export function serve(
  fetch: (request: Request) => Response | Promise<Response>,
  port = 0,
): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      try {
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) {
          if (Array.isArray(value)) for (const v of value) headers.append(name, v);
          else if (value !== undefined) headers.set(name, value);
        }
        const method = req.method ?? "GET";
        const request = new Request(`http://${req.headers.host}${req.url}`, {
          method,
          headers,
          body: method === "GET" || method === "HEAD" ? undefined : Buffer.concat(chunks),
        });
        const response = await fetch(request);
        const out: Record<string, string | string[]> = {};
        response.headers.forEach((value, name) => {
          if (name !== "set-cookie") out[name] = value;
        });
        const cookies = response.headers.getSetCookie();
        if (cookies.length > 0) out["set-cookie"] = cookies;
        res.writeHead(response.status, out);
        res.end(Buffer.from(await response.arrayBuffer()));
      } catch {
        res.writeHead(500).end();
      }
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}
