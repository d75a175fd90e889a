// The node-mpns peer of make bench: a small web service, as applications
// of the time wrote them, that sends one toast with the npm "mpns" package
// per GET /toast?channel=URI&text1=TEXT and answers with MPNS's statuses.
//   NODE_PATH=.../node_modules node util/bench-peers/node-mpns.js [PORT]

'use strict';

const http = require('http');
const mpns = require('mpns');

const port = Number(process.argv[2]) || 19091;

http.createServer((req, res) => {
    const q = new URL(req.url, 'http://localhost').searchParams;
    const toast = { text1: q.get('text1') || 'Hi', text2: q.get('text2') || '' };

    mpns.sendToast(q.get('channel'), toast, (err, result) => {
        const r = err || result || {};
        res.writeHead(err ? 502 : 200, {
            'X-NotificationStatus': r.notificationStatus || '',
            'X-SubscriptionStatus': r.subscriptionStatus || '',
            'X-DeviceConnectionStatus': r.deviceConnectionStatus || '',
        });
        res.end();
    });
}).listen(port, '127.0.0.1');
