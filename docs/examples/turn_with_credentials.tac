"""
A Twisted application that hands out TURN REST API credentials over HTTP and runs the TURN
relay in the same process, the way a Matrix homeserver serves /voip/turnServer.

Run it with:  twistd -ny docs/examples/turn_with_credentials.tac

Settings come from the environment so the same file serves the docs and the integration test:
TURN_SECRET (required), TURN_REALM, TURN_LISTEN_IP, TURN_PORT, TURN_RELAY_IP, TURN_MIN_PORT,
TURN_MAX_PORT, TURN_ALLOW_LOOPBACK_PEERS, HTTP_PORT.
"""

import json
import os

from twisted.application import internet, service
from twisted.internet import reactor
from twisted.web import resource, server

from twisted_turn import TurnService, restCredentials

env = os.environ
secret = env["TURN_SECRET"]
listenIp = env.get("TURN_LISTEN_IP", "127.0.0.1")
turnPort = int(env.get("TURN_PORT", "3478"))
credentialLifetime = 24 * 3600

application = service.Application("turn-with-credentials")

turn = TurnService(
    reactor=reactor,
    listeningIps=[listenIp],
    listeningPort=turnPort,
    relayIps=[env.get("TURN_RELAY_IP", listenIp)],
    minPort=int(env.get("TURN_MIN_PORT", "49152")),
    maxPort=int(env.get("TURN_MAX_PORT", "65535")),
    realm=env.get("TURN_REALM", "example.org"),
    staticAuthSecrets=[secret],
    allowLoopbackPeers=env.get("TURN_ALLOW_LOOPBACK_PEERS") == "1",
)
turn.setServiceParent(application)


class TurnCredentials(resource.Resource):
    """
    GET returns short-lived credentials in the shape of Matrix's /voip/turnServer answer.
    A real application authenticates the caller first and uses its user id.
    """

    isLeaf = True

    def render_GET(self, request):
        user = request.args.get(b"user", [b"guest"])[0].decode("utf-8")
        username, password = restCredentials(
            secret, user, ttl=credentialLifetime, now=reactor.seconds()
        )
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "username": username,
                "password": password,
                "uris": [
                    f"turn:{listenIp}:{turnPort}?transport=udp",
                    f"turn:{listenIp}:{turnPort}?transport=tcp",
                ],
                "ttl": credentialLifetime,
            }
        ).encode("utf-8")


site = server.Site(TurnCredentials())
internet.TCPServer(
    int(env.get("HTTP_PORT", "8080")), site, interface=listenIp
).setServiceParent(application)
