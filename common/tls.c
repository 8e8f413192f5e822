/*
 * TLS contexts and session-ticket keys (see tls.h).  One SSL_CTX per
 * tls_certificate; the first is the default, and its SNI callback moves
 * a connection to the context whose names match the client's.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cfg.h"
#include "log.h"
#include "tls.h"

#define TLS_NKEYS	3	/* the current ticket key and two before it */
#define EXPIRY_WARN_DAYS 14

struct tls_key {
	unsigned char	name[16];
	unsigned char	aes[32];
	unsigned char	hmac[32];
};

/*
 * Shared memory, written by the master only.  A seqlock: seq is odd
 * while a key is being written; a reader copies a key and retries if
 * seq moved meanwhile.
 */
#define TLS_MAGIC	0x70666b3174696b31ULL	/* layout version 1 */

struct tls_shared {
	uint64_t		magic;
	volatile unsigned	seq;
	volatile int		cur;		/* index of the current key */
	volatile int64_t	born;		/* unix seconds of the current */
	struct tls_key		k[TLS_NKEYS];
};

/* A process's handle on it: the memfd passes to an upgrade's master. */
struct tls_keys {
	struct tls_shared	*sh;
	int			 fd;
};

struct tls_server {
	SSL_CTX			*ctx[CFG_MAX_CERTS];
	struct cfg_words	 names[CFG_MAX_CERTS];	/* lower case */
	int			 n;
	struct tls_keys		*keys;
};

/* --- ticket keys ----------------------------------------------------- */

static int
new_key(struct tls_key *k)
{
	return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
	    RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
	    RAND_bytes(k->hmac, sizeof(k->hmac)) == 1 ? 0 : -1;
}

struct tls_keys *
tls_keys_open(int fd, char *err, size_t errlen)
{
	struct tls_keys *ks;
	struct tls_shared *sh;
	struct stat st;
	int made = fd < 0;

	if (made && ((fd = memfd_create("preforkd-tls-keys", MFD_CLOEXEC)) ==
	    -1 || ftruncate(fd, sizeof(*sh)) == -1)) {
		snprintf(err, errlen, "TLS ticket keys: memfd: %s",
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	/* Another build's, or not ours at all: make new keys instead. */
	if (!made && (fstat(fd, &st) == -1 || st.st_size != (off_t)sizeof(*sh))) {
		snprintf(err, errlen, "TLS ticket keys: the inherited store "
		    "is not this version's");
		close(fd);
		return NULL;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED || (ks = malloc(sizeof(*ks))) == NULL) {
		snprintf(err, errlen, "TLS ticket keys: %s", strerror(errno));
		if (sh != MAP_FAILED)
			munmap(sh, sizeof(*sh));
		close(fd);
		return NULL;
	}
	if (!made && (sh->magic != TLS_MAGIC || sh->cur < 0 || sh->cur >=
	    TLS_NKEYS)) {
		snprintf(err, errlen, "TLS ticket keys: the inherited store "
		    "is not this version's");
		munmap(sh, sizeof(*sh));
		close(fd);
		free(ks);
		return NULL;
	}
	/* A writer that died mid-write left seq odd: readers would spin. */
	if (sh->seq & 1)
		__atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);
	*ks = (struct tls_keys){ sh, fd };
	for (int i = 0; made && i < TLS_NKEYS; i++)
		if (new_key(&sh->k[i]) == -1) {
			snprintf(err, errlen, "TLS ticket keys: no random "
			    "bytes");
			munmap(sh, sizeof(*sh));
			close(fd);
			free(ks);
			return NULL;
		}
	if (made) {
		sh->born = time(NULL);
		sh->magic = TLS_MAGIC;
	}
	return ks;
}

int
tls_keys_fd(const struct tls_keys *ks)
{
	return ks->fd;
}

void
tls_keys_rotate(struct tls_keys *ks, int every_ms)
{
	struct tls_shared *sh = ks->sh;
	struct tls_key k;
	int next;

	if (time(NULL) - sh->born < every_ms / 1000 || new_key(&k) == -1)
		return;
	next = (sh->cur + 1) % TLS_NKEYS;	/* the oldest goes */
	__atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);
	sh->k[next] = k;
	sh->cur = next;
	sh->born = time(NULL);
	__atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);
	OPENSSL_cleanse(&k, sizeof(k));
	log_debug("TLS: a new session-ticket key");
}

/*
 * A copy of the key named name (NULL: the current one); its age in
 * rotations (0: current), or -1 when there is none by that name.
 */
static int
key_copy(const struct tls_keys *ks, const unsigned char *name,
    struct tls_key *out)
{
	struct tls_shared *sh = ks->sh;
	unsigned s;
	int found, cur;

	do {
		s = __atomic_load_n(&sh->seq, __ATOMIC_ACQUIRE);
		cur = sh->cur;
		found = -1;
		for (int i = 0; i < TLS_NKEYS && found == -1; i++) {
			int idx = (cur - i + TLS_NKEYS) % TLS_NKEYS;

			if (name == NULL || memcmp(sh->k[idx].name, name,
			    sizeof(out->name)) == 0) {
				*out = sh->k[idx];
				found = i;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((s & 1) || __atomic_load_n(&sh->seq, __ATOMIC_RELAXED) != s);
	return found;
}

/* OpenSSL's ticket callback: 1 done, 2 done and renew, 0 unknown key. */
static int
ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_keys *ks = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	OSSL_PARAM params[3];
	struct tls_key k;
	int age, rc;

	if ((age = key_copy(ks, enc ? NULL : name, &k)) == -1)
		return 0;	/* a full handshake, and a new ticket */
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		rc = RAND_bytes(iv, 16) == 1 && EVP_EncryptInit_ex(cctx,
		    EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 ? 1 : -1;
	} else
		rc = EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes,
		    iv) == 1 ? (age == 0 ? 1 : 2) : -1;
	if (rc != -1 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* --- SNI and ALPN ---------------------------------------------------- */

/* Does name (lower case) match pattern: exact, or "*." one label? */
static int
name_match(const char *pat, const char *name)
{
	const char *dot;

	if (strcmp(pat, name) == 0)
		return 1;
	if (pat[0] != '*' || pat[1] != '.' || (dot = strchr(name, '.')) ==
	    NULL || dot == name)
		return 0;
	return strcmp(pat + 1, dot) == 0;
}

static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *ts = arg;
	const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	char name[256];
	const char *w;

	(void)alert;
	if (sn == NULL || strlen(sn) >= sizeof(name))
		return SSL_TLSEXT_ERR_OK;	/* the default certificate */
	for (size_t i = 0; i <= strlen(sn); i++)
		name[i] = (char)((sn[i] >= 'A' && sn[i] <= 'Z') ? sn[i] + 32 :
		    sn[i]);
	/* Exact names first, then wildcards, in configuration order. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < ts->n; i++)
			for (int j = 0; (w = cfg_word(&ts->names[i], j)); j++)
				if ((pass == 0 ? strcmp(w, name) == 0 :
				    name_match(w, name))) {
					if (i > 0)
						SSL_set_SSL_CTX(ssl, ts->ctx[i]);
					return SSL_TLSEXT_ERR_OK;
				}
	return SSL_TLSEXT_ERR_OK;
}

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;	/* h2 only: no ALPN, not a failure */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* --- loading --------------------------------------------------------- */

/* "FILE:LINE: " of certificate i, or of its tls_key line. */
static const char *
where(const struct cfg *c, size_t i, int key)
{
	static char buf[PATH_MAX + 32];

	snprintf(buf, sizeof(buf), "%s", cfg_where(c, key &&
	    c->certs[i].key_line ? "tls_key" : "tls_certificate", i));
	return buf;
}

/*
 * OpenSSL's reasons for the last failure, first (the cause) to last,
 * without their codes ("no start line; PEM lib"), its queue emptied.
 */
static const char *
ssl_reason(void)
{
	static char buf[256];
	unsigned long e;
	const char *r;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		/* A system error (no such file...): OpenSSL has no text. */
		if (ERR_SYSTEM_ERROR(e))
			r = strerror(ERR_GET_REASON(e));
		else if ((r = ERR_reason_error_string(e)) == NULL)
			continue;
		if (buf[0] != '\0')
			strlcat(buf, "; ", sizeof(buf));
		strlcat(buf, r, sizeof(buf));
	}
	if (buf[0] == '\0')
		snprintf(buf, sizeof(buf), "%s", strerror(errno));
	return buf;
}

/* A name of certificate i that an earlier one has: said, not refused. */
static void
dup_names(const struct cfg *c, const struct tls_server *ts, int i)
{
	const char *w, *v;

	for (int j = 0; (w = cfg_word(&ts->names[i], j)) != NULL; j++)
		for (int k = 0; k < i; k++)
			for (int l = 0; (v = cfg_word(&ts->names[k], l)); l++)
				if (strcmp(v, w) == 0)
					log_warnx("%swarning: tls_certificate "
					    "%s: the name %s is %s's already, "
					    "which serves it",
					    where(c, (size_t)i, 0),
					    c->certs[i].cert, w,
					    c->certs[k].cert);
}

static int
add_name(struct cfg_words *w, const char *s, size_t n)
{
	size_t used = 0;

	for (int i = 0; i < w->n; i++)
		used += strlen(cfg_word(w, i)) + 1;
	if (n == 0 || memchr(s, '\0', n) != NULL)
		return 0;	/* not a name: nothing to match */
	if (used + n + 1 > sizeof(w->buf))
		return -1;
	for (size_t i = 0; i < n; i++)
		w->buf[used + i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ?
		    s[i] + 32 : s[i]);
	w->buf[used + n] = '\0';
	w->n++;
	return 0;
}

/* The names a certificate answers for: given, or its SAN's (or CN). */
static void
cert_names(const struct cfg_cert *ct, X509 *leaf, struct cfg_words *out)
{
	GENERAL_NAMES *sans;
	const char *w;
	char cn[256];

	out->n = 0;
	for (int i = 0; (w = cfg_word(&ct->names, i)) != NULL; i++)
		(void)add_name(out, w, strlen(w));
	if (out->n > 0)
		return;
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS && add_name(out, (const char *)
		    ASN1_STRING_get0_data(g->d.dNSName), (size_t)
		    ASN1_STRING_length(g->d.dNSName)) == -1) {
			log_warnx("tls_certificate %s: more names than fit in "
			    "%zu bytes; the first %d are served, name the "
			    "others on the line", ct->cert, sizeof(out->buf),
			    out->n);
			break;
		}
	}
	GENERAL_NAMES_free(sans);
	if (out->n == 0 && X509_NAME_get_text_by_NID(X509_get_subject_name(
	    leaf), NID_commonName, cn, sizeof(cn)) > 0)
		(void)add_name(out, cn, strlen(cn));
}

/* Warnings that do not stop a start: expiry, an incomplete chain. */
static void
cert_warnings(const struct cfg *c, size_t i, SSL_CTX *ctx, X509 *leaf)
{
	STACK_OF(X509) *chain = NULL;
	X509_STORE *store;
	X509_STORE_CTX *vc;
	int days, secs, verr = X509_V_OK;

	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)) ==
	    1 && (days < EXPIRY_WARN_DAYS || (days == 0 && secs <= 0))) {
		if (days < 0 || secs < 0)
			log_warnx("%swarning: tls_certificate %s has expired",
			    where(c, i, 0), c->certs[i].cert);
		else
			log_warnx("%swarning: tls_certificate %s expires in %d "
			    "days", where(c, i, 0), c->certs[i].cert, days);
	}
	(void)SSL_CTX_get0_chain_certs(ctx, &chain);
	if ((store = X509_STORE_new()) == NULL || (vc = X509_STORE_CTX_new())
	    == NULL) {
		X509_STORE_free(store);
		return;
	}
	(void)X509_STORE_set_default_paths(store);
	/* The last certificate of the file may be the root: trust it here. */
	if (chain != NULL && sk_X509_num(chain) > 0) {
		X509 *last = sk_X509_value(chain, sk_X509_num(chain) - 1);

		if (X509_check_issued(last, last) == X509_V_OK)
			(void)X509_STORE_add_cert(store, last);
	} else if (X509_check_issued(leaf, leaf) == X509_V_OK)
		(void)X509_STORE_add_cert(store, leaf);
	if (X509_STORE_CTX_init(vc, store, leaf, chain) == 1 &&
	    X509_verify_cert(vc) != 1)
		verr = X509_STORE_CTX_get_error(vc);
	if (verr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    verr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
		log_warnx("%swarning: tls_certificate %s: incomplete chain (an "
		    "issuer is neither in the file nor in the system's trusted "
		    "certificates; clients that lack it will refuse)",
		    where(c, i, 0), c->certs[i].cert);
	X509_STORE_CTX_free(vc);
	X509_STORE_free(store);
	ERR_clear_error();
}

static int
set_protocols(const struct cfg *c, SSL_CTX *ctx)
{
	int v12 = 0, v13 = 0;
	const char *w;

	for (int i = 0; (w = cfg_word(&c->tls_protocols, i)) != NULL; i++) {
		v12 |= strcmp(w, "TLSv1.2") == 0;
		v13 |= strcmp(w, "TLSv1.3") == 0;
	}
	return SSL_CTX_set_min_proto_version(ctx, v12 ? TLS1_2_VERSION :
	    TLS1_3_VERSION) == 1 && SSL_CTX_set_max_proto_version(ctx, v13 ?
	    TLS1_3_VERSION : TLS1_2_VERSION) == 1 ? 0 : -1;
}

/* A context with everything but the certificate. */
static SSL_CTX *
new_ctx(const struct cfg *c, struct tls_keys *ks, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	/*
	 * No SSL_OP_ENABLE_KTLS: with kernel TLS, OpenSSL 3.0 sends the rest
	 * of a partial write from the caller's first buffer, not from the
	 * one offered again, and our writers keep what is unsent in another
	 * buffer (doc/design.md 12).
	 */
	uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF;
	if (ctx == NULL || set_protocols(c, ctx) == -1) {
		snprintf(err, errlen, "TLS: %s", ssl_reason());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		snprintf(err, errlen, "%stls_ciphers: no usable cipher in '%s'",
		    cfg_where(c, "tls_ciphers", 0), c->tls_ciphers);
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * Our order of the TLS 1.2 suites (strongest first) decides; for
	 * TLS 1.3, whose suites are all strong, PRIORITIZE_CHACHA lets a
	 * client that puts ChaCha20 first (no AES hardware) have it.
	 */
	SSL_CTX_set_options(ctx, opts | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_PRIORITIZE_CHACHA);
	(void)SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
	(void)SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Stateless tickets only: a cache would be one worker's. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)"preforkd", 8);
	/* A ticket is good while its key is kept: two rotations. */
	SSL_CTX_set_timeout(ctx, 2L * (c->tls_ticket_rotate / 1000));
	(void)SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_app_data(ctx, ks);
	(void)SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	return ctx;
}

/*
 * An encrypted key: OpenSSL would ask for its pass phrase on the
 * terminal, inside a reload.  There is none to give.
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)arg = 1;	/* asked: the key is encrypted */
	return 0;
}

/* Certificate i's context: its chain, its key, and that they match. */
static SSL_CTX *
cert_ctx(const struct cfg *c, size_t i, struct tls_keys *ks,
    struct cfg_words *names, char *err, size_t errlen)
{
	const struct cfg_cert *ct = &c->certs[i];
	const char *key = ct->key[0] ? ct->key : ct->cert;
	SSL_CTX *ctx;
	X509 *leaf;
	int asked = 0;

	if ((ctx = new_ctx(c, ks, err, errlen)) == NULL)
		return NULL;
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
	if (SSL_CTX_use_certificate_chain_file(ctx, ct->cert) != 1) {
		snprintf(err, errlen, "%stls_certificate %s: %s",
		    where(c, i, 0), ct->cert, ssl_reason());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) ==
		    X509_R_KEY_VALUES_MISMATCH)
			goto mismatch;
		if (asked)
			ERR_clear_error();
		snprintf(err, errlen, "%s%s %s: %s", where(c, i, 1),
		    ct->key[0] ? "tls_key" : "tls_certificate (its key)", key,
		    asked ? "an encrypted key (with a pass phrase) is not "
		    "supported: decrypt it, readable by root only" :
		    ssl_reason());
		goto fail;
	}
	/* No callback outlives this frame (asked is on its stack). */
	SSL_CTX_set_default_passwd_cb(ctx, NULL);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	if (SSL_CTX_check_private_key(ctx) != 1) {
mismatch:
		ERR_clear_error();
		snprintf(err, errlen, "%s%s %s does not match the "
		    "certificate %s", where(c, i, 1), ct->key[0] ? "tls_key" :
		    "the key in", key, ct->cert);
		goto fail;
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	cert_names(ct, leaf, names);
	cert_warnings(c, i, ctx, leaf);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_load(struct cfg *c, struct tls_keys *ks, char *err, size_t errlen)
{
	struct tls_server *ts;
	size_t i;
	int any = 0;

	c->tls = NULL;
	/* Certificates without a tls listener are checked all the same. */
	any = c->ncerts > 0;
	for (i = 0; i < c->nlisten; i++)
		any |= c->listen_tls[i];
	if (!any)
		return 0;
	if ((ts = calloc(1, sizeof(*ts))) == NULL) {
		snprintf(err, errlen, "TLS: %s", strerror(errno));
		return -1;
	}
	ts->keys = ks;
	for (i = 0; i < c->ncerts; i++) {
		if ((ts->ctx[i] = cert_ctx(c, i, ks, &ts->names[i], err,
		    errlen)) == NULL) {
			tls_free(ts);
			return -1;
		}
		ts->n++;
		dup_names(c, ts, (int)i);
	}
	SSL_CTX_set_tlsext_servername_callback(ts->ctx[0], sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ts->ctx[0], ts);
	c->tls = ts;
	return 0;
}

void
tls_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	for (int i = 0; i < ts->n; i++)
		SSL_CTX_free(ts->ctx[i]);
	free(ts);
}

struct ssl_ctx_st *
tls_default_ctx(const struct tls_server *ts)
{
	return ts != NULL ? ts->ctx[0] : NULL;
}
