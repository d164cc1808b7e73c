/**
 * A TCP proxy on 127.0.0.1 in front of a test server, for "the connection
 * dropped mid-stream": it passes bytes both ways unchanged and counts what
 * the server sends; once armed with cutAfter(n), the moment the server has
 * sent n more bytes every connection through it is cut (both sides
 * destroyed, the last chunk not delivered), as a network that fails does.
 * New connections pass again afterwards, so a retry finds the server.
 * unplug() closes its port (and every connection): the server is out of
 * reach, a connection is refused as from a machine that is gone, until plugIn().
 *
 * With ftp: true it also relays FTP's passive data connections: a 229 (EPSV)
 * or 227 (PASV) reply on a control connection gets a port of the proxy's in
 * place of the server's, so the data that a download brings comes through
 * here too and counts.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

const HOST = '127.0.0.1';

export interface FaultProxy {
  /** Where clients connect instead of the server. */
  readonly port: number;
  /** Bytes the server has sent through the proxy so far. */
  readonly bytesDown: number;
  /** How many times the proxy has cut its connections. */
  readonly cuts: number;
  /** Cuts every connection once the server has sent `bytes` more bytes (counted from now); once. */
  cutAfter(bytes: number): void;
  /** Closes the port and every connection: connections are refused until plugIn(). */
  unplug(): Promise<void>;
  /** Listens on the same port again. */
  plugIn(): Promise<void>;
  /** Stops listening and destroys every connection. */
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  upstreamPort: number;
  /** Relay FTP passive data connections too (plain FTP only: the replies are rewritten). */
  ftp?: boolean;
}

export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const servers = new Set<Server>();
  let bytesDown = 0;
  let cuts = 0;
  let cutAt: number | undefined;

  const cut = () => {
    cutAt = undefined;
    cuts++;
    for (const s of sockets) s.destroy();
  };
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  /** What the server sends: counted, and the cut when the mark is passed. Returns false once cut. */
  const down = (chunk: Buffer): boolean => {
    bytesDown += chunk.length;
    if (cutAt !== undefined && bytesDown >= cutAt) {
      cut();
      return false;
    }
    return true;
  };

  const close = async (server: Server) => {
    servers.delete(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  /** A listener on `port` (0: any) that relays each connection to upstreamPort; `once` closes it after the first. */
  const relay = async (upstreamPort: number, control: boolean, once: boolean, port = 0): Promise<Server> => {
    const server = createServer((client) => {
      if (once) void close(server);
      client.pause();
      const upstream = connect(upstreamPort, HOST);
      track(client);
      track(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
      upstream.on('connect', () => {
        client.pipe(upstream);
        client.resume();
      });
      if (control && o.ftp) relayReplies(upstream, client, down, (port) => relay(port, false, true));
      else
        upstream.on('data', (chunk: Buffer) => {
          if (down(chunk) && !client.write(chunk)) {
            upstream.pause();
            client.once('drain', () => upstream.resume());
          }
        });
    });
    servers.add(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, HOST, () => resolve());
    });
    return server;
  };

  let main: Server | undefined = await relay(o.upstreamPort, true, false);
  const address = main.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const unplug = async () => {
    main = undefined;
    for (const s of sockets) s.destroy();
    await Promise.all([...servers].map(close));
  };
  return {
    port,
    get bytesDown() {
      return bytesDown;
    },
    get cuts() {
      return cuts;
    },
    cutAfter(bytes) {
      cutAt = bytesDown + bytes;
    },
    unplug,
    async plugIn() {
      main ??= await relay(o.upstreamPort, true, false, port);
    },
    stop: unplug,
  };
}

/**
 * The control connection's replies, line by line and in order: a passive-mode
 * reply names a relay of the proxy's instead of the server's data port.
 */
function relayReplies(
  upstream: Socket,
  client: Socket,
  down: (chunk: Buffer) => boolean,
  dataRelay: (port: number) => Promise<Server>,
): void {
  let pending = '';
  let queue = Promise.resolve();
  upstream.on('data', (chunk: Buffer) => {
    if (!down(chunk)) return;
    pending += chunk.toString('latin1');
    const lines = pending.split(/(?<=\r\n)/);
    pending = lines.at(-1)?.endsWith('\r\n') ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      queue = queue.then(async () => {
        const text = await passiveRewritten(line, dataRelay);
        if (!client.destroyed) client.write(Buffer.from(text, 'latin1'));
      });
    }
  });
}

async function passiveRewritten(line: string, dataRelay: (port: number) => Promise<Server>): Promise<string> {
  const portOf = (s: Server) => {
    const a = s.address();
    return typeof a === 'object' && a ? a.port : 0;
  };
  const epsv = /^229 (.*)\(\|\|\|(\d+)\|\)/.exec(line);
  if (epsv) return `229 ${epsv[1]}(|||${portOf(await dataRelay(Number(epsv[2])))}|)\r\n`;
  const pasv = /^227 (.*)\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(line);
  if (pasv) {
    const port = portOf(await dataRelay(Number(pasv[6]) * 256 + Number(pasv[7])));
    return `227 ${pasv[1]}(127,0,0,1,${Math.floor(port / 256)},${port % 256})\r\n`;
  }
  return line;
}
