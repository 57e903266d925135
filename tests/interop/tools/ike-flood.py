#!/usr/bin/env python3
"""ike-flood.py: an IKEv2 IKE_SA_INIT flood from many real source addresses, for the interop
scenarios only (run it inside a test network namespace, never on a real network).

usage: ike-flood.py DST SRC_PREFIX FIRST COUNT RATE SECONDS [return-cookie]
   e.g. ike-flood.py 198.51.100.1 198.51.100. 100 100 2000 20 return-cookie

One UDP socket per source address SRC_PREFIX<FIRST> .. SRC_PREFIX<FIRST+COUNT-1> (ephemeral
ports; the addresses must exist in the namespace), requests spread round-robin over them.
Every request is a fresh IKE_SA_INIT (new SPIi, new Ni) offering exactly one proposal,
AES-CBC-256 / PRF-HMAC-SHA2-256 / HMAC-SHA2-256-128 / MODP-2048 (group 14, the costliest DH
for the responder), with a genuine 256-byte group-14 public value (g^x mod p, drawn from a small
pool computed at start-up). RATE requests a second for SECONDS seconds, then up to GRACE
seconds (env IKE_FLOOD_GRACE, default 1.0) to collect late answers.

With `return-cookie` the attacker has real addresses: every COOKIE notify (RFC 7296 2.6) is
sent back at once in front of the same request, so the responder has to do the DH and keep a
half-open SA. Without it the flood looks spoofed: answers are counted, cookies never returned.

Prints one line on stdout, key=value pairs separated by spaces:
  sent        first requests sent (without cookie)
  answered    first requests that got an answer (any IKE_SA_INIT response)
  cookies     answers carrying a COOKIE notify
  returned    requests sent again with their cookie
  ranswered   returned requests that got an answer
  full        answers with an SA payload (the responder did the DH and kept state)
  other       answers that were neither (an error notify such as INVALID_KE_PAYLOAD)
  stray       datagrams that matched no request we still remember
  senderr     sendto() failures (socket buffer full, no route)
  lat50/lat99/latmax  milliseconds from a request to its answer (first and returned requests)
  elapsed     seconds spent sending;  rate  first requests per second achieved
Exit status 0 when it ran, 2 on bad usage or when a source address cannot be bound.
"""
import os
import secrets
import selectors
import socket
import struct
import sys
import time

# RFC 3526 group 14, generator 2.
MODP2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0B"
    "FF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55"
    "D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C"
    "08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)

PT_SA, PT_KE, PT_NONCE, PT_NOTIFY = 33, 34, 40, 41
EXCH_IKE_SA_INIT = 34
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20
N_COOKIE = 16390
NONCE_LEN = 32
REMEMBER_SECS = 8.0      # how long a request's SPI and body are kept for its answer
REMEMBER_MAX = 400000    # and at most this many of them


def generic(next_payload, body):
    """A payload: generic header (next payload, not critical, length) and body."""
    return struct.pack("!BBH", next_payload, 0, 4 + len(body)) + body


def transform(more, ttype, tid, attrs=b""):
    body = struct.pack("!BBH", ttype, 0, tid) + attrs
    return struct.pack("!BBH", 3 if more else 0, 0, 4 + len(body)) + body


def sa_body():
    transforms = [
        transform(True, 1, 12, struct.pack("!HH", 0x800E, 256)),  # ENCR_AES_CBC, key length 256
        transform(True, 2, 5),                                     # PRF_HMAC_SHA2_256
        transform(True, 3, 12),                                    # AUTH_HMAC_SHA2_256_128
        transform(False, 4, 14),                                   # DH group 14
    ]
    t = b"".join(transforms)
    # Last proposal (0), proposal #1, protocol IKE (1), no SPI, 4 transforms.
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(t), 1, 1, 0, len(transforms)) + t
    return proposal


def ke_pool(n):
    """n genuine group-14 public values, 256 bytes each (short 320-bit exponents: cheap)."""
    out = []
    while len(out) < n:
        y = pow(2, secrets.randbits(320) | (1 << 319), MODP2048_P)
        if 1 < y < MODP2048_P - 1:
            out.append(y.to_bytes(256, "big"))
    return out


class Builder:
    """Builds IKE_SA_INIT requests: the SA payload and the KE payloads are made once."""

    def __init__(self):
        self.sa = generic(PT_KE, sa_body())
        self.kes = [generic(PT_NONCE, struct.pack("!HH", 14, 0) + v) for v in ke_pool(16)]
        self.n = 0

    def body(self, nonce):
        """SA, KE, Ni; the first payload is SA."""
        self.n += 1
        return self.sa + self.kes[self.n % len(self.kes)] + generic(0, nonce)

    @staticmethod
    def message(spi_i, body, cookie=None):
        first = PT_SA
        if cookie is not None:
            # N(COOKIE) in front of the unchanged request (RFC 7296 2.6).
            body = generic(PT_SA, struct.pack("!BBH", 0, 0, N_COOKIE) + cookie) + body
            first = PT_NOTIFY
        header = spi_i + bytes(8) + struct.pack(
            "!BBBBII", first, 0x20, EXCH_IKE_SA_INIT, FLAG_INITIATOR, 0, 28 + len(body))
        return header + body


def parse_answer(data):
    """(SPIi, kind, cookie) of an IKE_SA_INIT response, or None if it is not one.
    kind: 'cookie', 'full' (has an SA payload) or 'other'."""
    if len(data) < 28 or data[17] != 0x20 or data[18] != EXCH_IKE_SA_INIT:
        return None
    if not data[19] & FLAG_RESPONSE:
        return None
    nxt, off, end = data[16], 28, min(len(data), struct.unpack_from("!I", data, 24)[0])
    cookie, has_sa = None, False
    while nxt != 0 and off + 4 <= end:
        plen = struct.unpack_from("!H", data, off + 2)[0]
        if plen < 4 or off + plen > end:
            break
        if nxt == PT_SA:
            has_sa = True
        elif nxt == PT_NOTIFY and plen >= 8:
            spi_size = data[off + 5]
            ntype = struct.unpack_from("!H", data, off + 6)[0]
            if ntype == N_COOKIE:
                cookie = bytes(data[off + 8 + spi_size:off + plen])
        nxt = data[off]
        off += plen
    if cookie is not None:
        return data[:8], "cookie", cookie
    return data[:8], ("full" if has_sa else "other"), None


def usage(msg):
    sys.stderr.write(f"ike-flood.py: {msg}\n" + __doc__.split("\n\n")[1] + "\n")
    sys.exit(2)


def main(argv):
    if len(argv) not in (7, 8) or (len(argv) == 8 and argv[7] != "return-cookie"):
        usage("wrong arguments")
    try:
        dst, prefix = argv[1], argv[2]
        first, count = int(argv[3]), int(argv[4])
        rate, seconds = float(argv[5]), float(argv[6])
        grace = float(os.environ.get("IKE_FLOOD_GRACE", "1.0"))
    except ValueError as e:
        usage(str(e))
    if count < 1 or rate <= 0 or seconds <= 0 or seconds > 600 or grace < 0 or grace > 30:
        usage("COUNT >= 1, RATE > 0, 0 < SECONDS <= 600, 0 <= GRACE <= 30")
    return_cookie = len(argv) == 8
    target = (dst, 500)

    socks = []
    sel = selectors.DefaultSelector()
    for i in range(count):
        src = f"{prefix}{first + i}"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((src, 0))
        except OSError as e:
            sys.stderr.write(f"ike-flood.py: cannot bind {src}: {e}\n")
            sys.exit(2)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ)

    build = Builder()
    # SPIi -> [time sent, stage (0 first request, 1 returned with cookie), body or None].
    pending = {}
    c = dict(sent=0, answered=0, cookies=0, returned=0, ranswered=0, full=0, other=0,
             stray=0, senderr=0)
    lat = []                 # answer latencies in s (every one up to 200,000, then 1 in 8)

    def send(sock, msg):
        try:
            sock.sendto(msg, target)
            return True
        except OSError:
            c["senderr"] += 1
            return False

    def forget_old(now):
        while pending:
            spi = next(iter(pending))
            if now - pending[spi][0] < REMEMBER_SECS and len(pending) < REMEMBER_MAX:
                break
            del pending[spi]

    def receive(sock, now, may_return):
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ans = parse_answer(data)
            entry = pending.get(ans[0]) if ans else None
            if entry is None:
                c["stray"] += 1
                continue
            spi, kind, cookie = ans
            if len(lat) < 200000 or (c["answered"] + c["ranswered"]) % 8 == 0:
                lat.append(time.monotonic() - entry[0])
            if entry[1] == 0:
                c["answered"] += 1
            else:
                c["ranswered"] += 1
            c["cookies" if kind == "cookie" else kind] += 1
            if kind == "cookie" and entry[1] == 0 and return_cookie and may_return:
                if send(sock, build.message(spi, entry[2], cookie)):
                    c["returned"] += 1
                    # Re-inserted at the end: remembered for its second answer.
                    del pending[spi]
                    pending[spi] = [now, 1, None]
                    continue
            del pending[spi]

    start = time.monotonic()
    stop_sending = start + seconds
    stop_all = stop_sending + grace
    interval = 1.0 / rate
    total = max(1, round(seconds * rate))
    next_forget = start + 0.5
    while True:
        now = time.monotonic()
        if now >= stop_all:
            break
        # The last batch may be a few ms late; it is still sent (then no more).
        if c["sent"] < total and now < stop_sending + 0.05:
            due = min(int((now - start) * rate) + 1, total)
            # Send what is due, at most 50 ms worth in one go (no bursts after a stall).
            burst = max(1, int(rate * 0.05))
            n = 0
            while c["sent"] < due and n < burst:
                rnd = os.urandom(8 + NONCE_LEN)
                spi, body = rnd[:8], build.body(rnd[8:])
                sock = socks[c["sent"] % count]
                c["sent"] += 1
                n += 1
                if send(sock, build.message(spi, body)):
                    pending[spi] = [now, 0, body if return_cookie else None]
            # Sends are batched: wake at least every 2 ms (and at the interval at low rates).
            wait = max(0.0, min(max(interval, 0.002), 0.05, stop_sending - time.monotonic()))
            if c["sent"] >= total or c["sent"] < due:
                wait = 0.0                               # done, or behind: no sleeping
        else:
            wait = min(0.01, max(0.0, stop_all - now))
        for key, _ in sel.select(timeout=wait):
            receive(key.fileobj, now, now < stop_all)
        if now >= next_forget:
            forget_old(now)
            next_forget = now + 0.5
    elapsed = min(time.monotonic(), stop_sending) - start
    rate_done = c["sent"] / elapsed if elapsed > 0 else 0.0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0
    print(" ".join(f"{k}={v}" for k, v in c.items())
          + f" lat50={pick(0.5):.0f} lat99={pick(0.99):.0f} latmax={pick(1.0):.0f}"
          + f" elapsed={elapsed:.1f} rate={rate_done:.0f} target={rate:.0f}"
          + f" mode={'return-cookie' if return_cookie else 'no-return'}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
