"""A client that knows nothing of jobworker but what server reflection tells it (as grpcurl does).

It asks for the file defining a service, adds every FileDescriptorProto it is sent (and any import it
still lacks, by file name) to a fresh standard DescriptorPool, and makes message classes and calls
from the descriptors alone.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

TIMEOUT = 20


def message_class(descriptor):
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class ReflectionClient:
    def __init__(self, channel, reflection_pb2, version: str):
        self._pb = reflection_pb2
        self._info = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        self.received = {}  # file name -> FileDescriptorProto, as served

    def ask_many(self, requests):
        """Several requests on one stream; one response each, in order."""
        return list(self._info(iter(requests), timeout=TIMEOUT))

    def ask(self, **fields):
        (response,) = self.ask_many([self._pb.ServerReflectionRequest(host="", **fields)])
        if response.HasField("error_response"):
            raise LookupError(f"{fields}: {response.error_response.error_code} {response.error_response.error_message}")
        return response

    def list_services(self):
        return [s.name for s in self.ask(list_services="*").list_services_response.service]

    def _keep(self, response):
        names = []
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.received[proto.name] = proto
            names.append(proto.name)
        return names

    def file_containing_symbol(self, symbol):
        return self._keep(self.ask(file_containing_symbol=symbol))

    def file_by_filename(self, name):
        return self._keep(self.ask(file_by_filename=name))

    def pool_for(self, symbol):
        """A fresh DescriptorPool holding the file that defines `symbol` and everything it imports."""
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            if name not in self.received:
                self.file_by_filename(name)
            for dependency in self.received[name].dependency:
                add(dependency)
            pool.Add(self.received[name])
            added.add(name)

        add(self.file_containing_symbol(symbol)[0])
        return pool


class DynamicService:
    """Calls a service's methods by name, with classes made from its descriptors."""

    def __init__(self, channel, pool, service_name):
        self.descriptor = pool.FindServiceByName(service_name)
        self._channel = channel

    def request(self, method):
        return message_class(self.descriptor.FindMethodByName(method).input_type)()

    def call(self, method, request, metadata=None):
        m = self.descriptor.FindMethodByName(method)
        response = message_class(m.output_type)
        path = f"/{self.descriptor.full_name}/{m.name}"
        if m.server_streaming:
            stub = self._channel.unary_stream(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=response.FromString)
        else:
            stub = self._channel.unary_unary(path, request_serializer=lambda r: r.SerializeToString(), response_deserializer=response.FromString)
        return stub(request, timeout=TIMEOUT, metadata=metadata)
