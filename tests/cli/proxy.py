"""A TCP relay in front of the live portal whose connections a test can cut at once, as a
load balancer restart or a network blip would."""
import socket
import threading


class CuttableProxy:
    def __init__(self, port):
        self.upstream = ("127.0.0.1", port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.lock = threading.Lock()
        self.open = []
        self.websockets = 0  # connections that asked for /ws/
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source, sink, from_client):
        first = from_client
        try:
            while data := source.recv(65536):
                if first:
                    first = False
                    if data.startswith(b"GET /ws/"):
                        with self.lock:
                            self.websockets += 1
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Drop every open connection (both ways) without a goodbye."""
        with self.lock:
            pairs, self.open = self.open, []
            self.cuts += 1
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.server.close()
        self.cut()
        self.cuts -= 1  # closing is not a cut the test made
