// The gateway's admission to its database sessions: at most `sessions`
// requests hold one; the others wait in a FIFO queue. A request whose
// expected wait is over the bound is refused at once (the caller answers
// 503 with Retry-After), rather than left to wait and then fail on the
// statement timeout.
//
// Expected wait = the sessions' turnover ahead of it: (requests queued + 1)
// x the median time a request of each kind held a session / sessions. That
// time is taken while every session is busy (the last SAMPLES such calls of
// that function; of any function where that one has none yet; nothing where
// no call has been seen): a search holds a session longer when others share
// the server's model workers with it, and only a busy gateway has a queue.
// A search alone, say one at a time, would make a burst look cheap.

const SAMPLES = 15;

function median(values) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export class Busy extends Error {
  constructor(expectedMs, boundMs, waiting) {
    super('busy');
    this.expectedMs = expectedMs;
    this.boundMs = boundMs;
    this.waiting = waiting;
    // when a request would be admitted again, as the queue drains
    this.retryAfterS = Math.max(1, Math.ceil((expectedMs - boundMs) / 1000));
  }
}

export class SessionQueue {
  // sessions: how many requests hold a session at once; maxWaitMs: the bound
  // on the expected wait.
  constructor(sessions, maxWaitMs) {
    this.sessions = sessions;
    this.maxWaitMs = maxWaitMs;
    this.active = 0;
    this.waiters = [];           // FIFO of {fn, resolve, reject}
    this.samples = new Map();    // fn -> recent hold times (ms)
  }

  // The median hold time of fn, else of any function, else 0.
  serviceMs(fn) {
    const own = this.samples.get(fn);
    if (own && own.length) return median(own);
    return median([...this.samples.values()].flat()) ?? 0;
  }

  // The wait of a request for fn that would join the queue now.
  expectedWaitMs(fn) {
    let work = this.serviceMs(fn);
    for (const w of this.waiters) work += this.serviceMs(w.fn);
    return work / this.sessions;
  }

  record(fn, ms) {
    let s = this.samples.get(fn);
    if (!s) this.samples.set(fn, (s = []));
    s.push(ms);
    if (s.length > SAMPLES) s.shift();
  }

  // Resolves with a release function once a session is free for fn; throws
  // Busy at once when the expected wait is over the bound. signal (an
  // AbortSignal) takes a waiting request out of the queue (its client left).
  acquire(fn, signal = null) {
    if (this.active < this.sessions && this.waiters.length === 0) {
      this.active++;
      return Promise.resolve(this.#releaser(fn));
    }
    const expected = this.expectedWaitMs(fn);
    if (expected > this.maxWaitMs) {
      return Promise.reject(new Busy(expected, this.maxWaitMs, this.waiters.length));
    }
    return new Promise((resolve, reject) => {
      const waiter = { fn, resolve, reject };
      this.waiters.push(waiter);
      if (signal) {
        const leave = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(Object.assign(new Error('client left'), { name: 'AbortError' }));
          }
        };
        if (signal.aborted) leave();
        else signal.addEventListener('abort', leave, { once: true });
      }
    });
  }

  #releaser(fn) {
    const t0 = performance.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (this.active === this.sessions) this.record(fn, performance.now() - t0);
      const next = this.waiters.shift();
      if (next) next.resolve(this.#releaser(next.fn));   // the slot passes on
      else this.active--;
    };
  }
}
