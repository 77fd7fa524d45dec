#!/usr/bin/env node
// A third-party LwM2M peer for labkit's interop tests, built on lwm2m-node-lib (npm).
//
// Usage:
//   node peer.js client HOST PORT ENDPOINT LIFETIME   register to an LwM2M server, serve /3/0 and /5/0
//   node peer.js server PORT                          run lwm2m-node-lib's LwM2M server
//
// Protocol with the test: one JSON object per line on stdout (events and answers); commands
// as one JSON object per line on stdin:
//   client: {"op": "quit"}                          de-register and exit
//   server: {"op": "read", "endpoint": E, "path": "/3/0/3"}
//           {"op": "write", "endpoint": E, "path": "/1/0/1", "value": "120"}
//           {"op": "quit"}
// Nothing here listens anywhere but the addresses given on the command line.
'use strict';

const readline = require('readline');
const lwm2m = require('lwm2m-node-lib');

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(where, error) {
    emit({ event: 'error', where: where, error: String(error && (error.message || error.name || error)) });
}

function commands(handle) {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => {
        let cmd;
        try {
            cmd = JSON.parse(line);
        } catch (e) {
            fail('stdin', e);
            return;
        }
        handle(cmd);
    });
    rl.on('close', () => handle({ op: 'quit' }));
}

function runClient(host, port, endpoint, lifetime) {
    const client = lwm2m.client;
    const registry = client.registry;
    client.init({
        client: {
            lifetime: lifetime,
            version: '1.0',
            logLevel: 'FATAL',
            ipProtocol: 'udp4',
            serverProtocol: 'udp4',
            formats: [{ name: 'lightweightm2m/text', value: 1541 }],
            writeFormat: 'lightweightm2m/text',
        },
    });
    require('logops').setLevel('FATAL');

    const setup = [
        ['/3/0', '0', 'node-lab'], // Manufacturer
        ['/3/0', '1', 'lwm2m-node-lib'], // Model Number
        ['/3/0', '3', '0.9.0'], // Firmware Version
        ['/5/0', '3', '0'], // State: IDLE
        ['/5/0', '5', '0'], // Update Result: INITIAL
    ];
    registry.create('/3/0', () => {
        registry.create('/5/0', () => {
            let pending = setup.length;
            for (const [uri, res, value] of setup) {
                registry.setResource(uri, res, value, () => {
                    pending -= 1;
                    if (pending === 0) register();
                });
            }
        });
    });

    let device = null;

    function register() {
        client.register(host, port, null, endpoint, (error, info) => {
            if (error) {
                fail('register', error);
                process.exit(1);
            }
            device = info;
            client.setHandler(info.serverInfo, 'write', (objectType, objectId, resourceId, value, cb) => {
                emit({ event: 'write', path: `/${objectType}/${objectId}/${resourceId}`, value: String(value) });
                cb(null);
            });
            client.setHandler(info.serverInfo, 'execute', (objectType, objectId, resourceId, args, cb) => {
                emit({ event: 'execute', path: `/${objectType}/${objectId}/${resourceId}` });
                cb(null);
            });
            client.setHandler(info.serverInfo, 'read', (objectType, objectId, resourceId, value, cb) => {
                emit({ event: 'read', path: `/${objectType}/${objectId}/${resourceId}` });
                cb(null, value);
            });
            emit({ event: 'registered', location: info.location, port: info.localPort });
        });
    }

    commands((cmd) => {
        if (cmd.op !== 'quit') return;
        if (device === null) process.exit(0);
        const timer = setTimeout(() => process.exit(2), 5000);
        client.unregister(device, (error) => {
            clearTimeout(timer);
            if (error) fail('unregister', error);
            emit({ event: 'deregistered' });
            process.exit(0);
        });
    });
}

function runServer(port) {
    const server = lwm2m.server;
    const config = {
        port: port,
        udpWindow: 100,
        logLevel: 'FATAL',
        ipProtocol: 'udp4',
        serverProtocol: 'udp4',
        defaultType: 'Device',
        deviceRegistry: { type: 'memory' },
        formats: [
            { name: 'application-vnd-oma-lwm2m/text', value: 1541 },
            { name: 'application-vnd-oma-lwm2m/tlv', value: 1542 },
            { name: 'application-vnd-oma-lwm2m/json', value: 1543 },
            { name: 'application-vnd-oma-lwm2m/opaque', value: 1544 },
        ],
        writeFormat: 'application-vnd-oma-lwm2m/text',
        defaultAcceptFormat: 'text/plain',
        types: [],
    };
    require('logops').setLevel('FATAL');
    const endpoints = new Map(); // endpoint name -> device id in the node registry

    server.start(config, (error, serverInfo) => {
        if (error) {
            fail('start', error);
            process.exit(1);
        }
        server.setHandler(serverInfo, 'registration', (endpoint, lifetime, version, binding, payload, cb) => {
            emit({ event: 'registered', endpoint, lifetime, version, binding, payload });
            cb();
        });
        server.setHandler(serverInfo, 'unregistration', (device, cb) => {
            emit({ event: 'deregistered', endpoint: device && device.name });
            cb();
        });
        // lwm2m-node-lib calls this one with (device, payload, callback), unlike its README.
        server.setHandler(serverInfo, 'updateRegistration', (object, payload, cb) => {
            emit({ event: 'updated', endpoint: object && object.name, lifetime: object && object.lifetime });
            cb();
        });
        emit({ event: 'listening', port: port });

        commands((cmd) => {
            if (cmd.op === 'quit') {
                const timer = setTimeout(() => process.exit(0), 3000);
                server.stop(serverInfo, () => {
                    clearTimeout(timer);
                    process.exit(0);
                });
                return;
            }
            server.getRegistry().getByName(cmd.endpoint, (error, device) => {
                if (error) {
                    emit({ op: cmd.op, error: String(error.name || error) });
                    return;
                }
                const [objectType, objectId, resourceId] = cmd.path.split('/').filter(Boolean);
                const answer = (err, result) =>
                    emit({ op: cmd.op, path: cmd.path, error: err ? String(err.name || err) : null,
                           result: result === undefined ? null : String(result) });
                if (cmd.op === 'read') {
                    server.read(device.id, objectType, objectId, resourceId, answer);
                } else if (cmd.op === 'write') {
                    server.write(device.id, objectType, objectId, resourceId, cmd.value, answer);
                } else {
                    emit({ op: cmd.op, error: 'unknown op' });
                }
            });
        });
    });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'client') {
    runClient(args[0], Number(args[1]), args[2], Number(args[3] || 60));
} else if (mode === 'server') {
    runServer(Number(args[0]));
} else {
    process.stderr.write('usage: node peer.js client HOST PORT ENDPOINT LIFETIME | server PORT\n');
    process.exit(2);
}
