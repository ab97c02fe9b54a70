/* A CONNECT tunnel through a sandbox's proxy on stdin/stdout (realm-init and realm-vmagent `connect`). */
#ifndef REALM_PROXY_CONNECT_H
#define REALM_PROXY_CONNECT_H

/* Ask the proxy on the connected socket `fd` for HOST:PORT, then relay stdin/stdout through it.
 * Returns the exit code: 0 when the far end closed, 1 on refusal or error (said on stderr). */
int proxy_tunnel(int fd, const char *host, const char *port);

#endif
