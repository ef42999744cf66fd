"""An independent HTTPS client (Python's ssl) that announces a 100 MB body
with a bogus token and sends none of it: the admin API must answer 401 from
the headers alone. Prints the status line and the seconds it took."""
import socket
import ssl
import sys
import time

port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1")
start = time.time()
sock.sendall(b"POST /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer lyo_bogus\r\n"
             b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode(), round(time.time() - start, 2))
