"""The Celery broker transport: kombu's Redis transport, made to survive a Redis restart.

kombu 5.7.0 with celery 5.7.0: when the broker connection drops, the worker calls
`Connection.collect()`, which detaches the transport (`transport.client = None`), and then
`Connection.close()`, which closes the old channel; closing restores the unacknowledged messages
(acks_late: every running job has one) and so asks `Channel._connparams()` for connection
parameters, which read `transport.client.hostname` -> AttributeError. That is not a connection
error, so the worker stops for good ("Unrecoverable error"). No released kombu fixes it.

Here each channel remembers the connection that opened it and gives it back to a detached
transport, so a channel outliving its connection still knows where the broker is: restoring or
acknowledging then either works (Redis is back) or raises a redis ConnectionError, which the
worker treats as the connection loss it is and retries.
"""
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def __init__(self, connection, *args, **kwargs):
        self._broker_connection = connection.client
        super().__init__(connection, *args, **kwargs)

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            self.connection.client = self._broker_connection
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
