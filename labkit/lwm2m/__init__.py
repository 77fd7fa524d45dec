"""The pure LwM2M core: objects, paths, content formats, registration and the /5 state machine.

Nothing in this package opens a socket, starts an event loop, reads a clock or draws a random
number: time and seeds are arguments, so every rule here is tested instantly and
deterministically. The aiocoap adapters in :mod:`labkit.server` and :mod:`labkit.client`
translate CoAP messages into calls of this core and its answers back into CoAP.
"""
