twisted-turn's first release: a TURN (RFC 8656) and STUN (RFC 8489) server over UDP, run with
`twistd -n turn` using coturn's option names and turnserver.conf syntax, or embedded as
`twisted_turn.TurnService`. Long-term credentials (MD5 and SHA-256, USERHASH), TURN REST API
shared secrets with rotation, stateless nonces, and a peer policy that refuses private, loopback
and special-purpose addresses by default.
