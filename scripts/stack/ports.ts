// Picks random free loopback TCP ports.
//
// Ports are drawn at random from a range below Linux's default ephemeral range
// (32768-60999) so an outgoing connection's source port cannot grab a port between the
// check here and the service binding it. Each candidate is checked by binding it.
import { createServer } from 'node:net';

export const loopbackHost = '127.0.0.1';
export const randomPortMin = 20000;
export const randomPortMax = 32767;
export const pickAttemptsMax = 500;

/** True when `port` can be bound on `host` right now. */
export function isPortFree(port: number, host: string = loopbackHost): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolvePromise(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolvePromise(true));
    });
  });
}

/** Picks `count` distinct free loopback ports, none of them in `exclude`. */
export async function pickFreePorts(count: number, exclude: Iterable<number> = []): Promise<number[]> {
  const taken = new Set<number>(exclude);
  const picked: number[] = [];
  for (let attempt = 0; picked.length < count; attempt++) {
    if (attempt >= pickAttemptsMax) {
      throw new Error(`could not find ${count} free loopback ports in ${pickAttemptsMax} attempts`);
    }
    const port = randomPortMin + Math.floor(Math.random() * (randomPortMax - randomPortMin + 1));
    if (taken.has(port)) continue;
    taken.add(port);
    if (await isPortFree(port)) picked.push(port);
  }
  return picked;
}

export async function pickFreePort(exclude: Iterable<number> = []): Promise<number> {
  const [port] = await pickFreePorts(1, exclude);
  if (port === undefined) throw new Error('pickFreePorts returned nothing');
  return port;
}
