/* Key-only logins: the cross sysroots have no crypt(), and a lab guest must
 * never accept a password. */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_SVR_PUBKEY_AUTH 1
#define DROPBEAR_X11FWD 0
#define DROPBEAR_SVR_AGENTFWD 0
#define DROPBEAR_SVR_LOCALTCPFWD 0
#define DROPBEAR_SVR_REMOTETCPFWD 0
#define DROPBEAR_ED25519 1
#define DROPBEAR_RSA 1
#define DROPBEAR_SFTPSERVER 0
#define DEFAULT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
/* No re-exec of the server for each connection (its purpose is a fresh memory
 * layout per connection, which a throwaway test guest does not need): under
 * emulation the exec, dynamic linking and start-up again cost the first SSH
 * session of a cold guest about 0.1 s. The child still reseeds its random
 * numbers from the kernel before serving (svr-main.c, seedrandom() per accept). */
#define DROPBEAR_REEXEC 0
