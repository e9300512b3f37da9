/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fs-verity built-in signatures with OpenSSL (sign.h). The bytes signed
 * and the PKCS#7 flags are those of fsverity-utils' `fsverity sign`, so
 * both tools give the same signature for the same key and digest, and
 * the kernel takes either with FS_IOC_ENABLE_VERITY.
 */
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/util.h"
#include "common/sign.h"

/* include/uapi/linux/fsverity.h */
#define FS_VERITY_HASH_ALG_SHA256 1

/* struct fsverity_formatted_digest for SHA-256. */
#define FORMATTED_SIZE (8 + 2 + 2 + CFS_DIGEST_SIZE)

/* PKCS#7 as the kernel wants it: detached, binary, no authenticated
 * attributes, no certificates (the keyring has them). */
#define SIGN_FLAGS                                                             \
	(PKCS7_BINARY | PKCS7_DETACHED | PKCS7_NOATTR | PKCS7_NOCERTS)

static void formatted_digest(const uint8_t digest[CFS_DIGEST_SIZE],
			     uint8_t out[FORMATTED_SIZE])
{
	memcpy(out, "FSVerity", 8);
	out[8] = FS_VERITY_HASH_ALG_SHA256;
	out[9] = 0;
	out[10] = CFS_DIGEST_SIZE;
	out[11] = 0;
	memcpy(out + 12, digest, CFS_DIGEST_SIZE);
}

/* OpenSSL's reason for the last failure, for a message. */
static const char *ossl_reason(void)
{
	static __thread char buf[160];
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static X509 *read_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return c;
}

int cfs_sign_digest(const char *key_path, const char *cert_path,
		    const uint8_t digest[CFS_DIGEST_SIZE], uint8_t **sig,
		    size_t *sig_len)
{
	uint8_t data[FORMATTED_SIZE];
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	PKCS7 *p7 = NULL;
	BIO *kb = NULL, *db = NULL;
	unsigned char *der = NULL;
	int len, r = 0;

	*sig = NULL;
	kb = BIO_new_file(key_path, "r");
	pkey = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	if (!pkey) {
		r = cfs_error(EINVAL, "%s: not a PEM private key: %s", key_path,
			      ossl_reason());
		goto out;
	}
	cert = read_cert(cert_path);
	if (!cert) {
		r = cfs_error(EINVAL, "%s: not a PEM certificate: %s",
			      cert_path, ossl_reason());
		goto out;
	}
	if (X509_check_private_key(cert, pkey) != 1) {
		ERR_clear_error();
		r = cfs_error(EINVAL, "%s: not the key of certificate %s",
			      key_path, cert_path);
		goto out;
	}
	formatted_digest(digest, data);
	db = BIO_new_mem_buf(data, sizeof(data));
	p7 = db ? PKCS7_sign(NULL, NULL, NULL, db, SIGN_FLAGS | PKCS7_PARTIAL) :
		  NULL;
	if (!p7 ||
	    !PKCS7_sign_add_signer(p7, cert, pkey, EVP_sha256(), SIGN_FLAGS) ||
	    PKCS7_final(p7, db, SIGN_FLAGS) != 1 ||
	    (len = i2d_PKCS7(p7, &der)) <= 0) {
		r = cfs_error(EIO, "signing with %s: %s", key_path,
			      ossl_reason());
		goto out;
	}
	*sig = malloc((size_t)len);
	if (!*sig) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*sig, der, (size_t)len);
	*sig_len = (size_t)len;
out:
	OPENSSL_free(der);
	PKCS7_free(p7);
	BIO_free(db);
	BIO_free(kb);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return r;
}

struct cfs_trust {
	STACK_OF(X509) * certs;
};

static int add_pem_file(struct cfs_trust *t, const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	size_t before = (size_t)sk_X509_num(t->certs);
	X509 *c;

	if (!b) {
		int e = errno ? errno : ENOENT;

		ERR_clear_error();
		return cfs_error_errno(e, "trusted certificate %s", path);
	}
	while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(t->certs, c)) {
			X509_free(c);
			BIO_free(b);
			return -ENOMEM;
		}
	ERR_clear_error(); /* the end of the file */
	BIO_free(b);
	if ((size_t)sk_X509_num(t->certs) == before)
		return cfs_error(EINVAL,
				 "trusted certificate %s: no PEM certificate "
				 "in it",
				 path);
	return 0;
}

static int add_dir(struct cfs_trust *t, const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL;
	size_t n = 0;
	int r;

	if (fd < 0)
		return errno == ENOENT ?
			       0 :
			       cfs_error_errno(errno, "trust directory %s",
					       dir);
	/* sorted: what is loaded never depends on readdir order */
	r = cfs_dir_names(fd, &names, &n);
	if (r < 0)
		return cfs_error_errno(-r, "trust directory %s", dir);
	for (size_t i = 0; r == 0 && i < n; i++) {
		size_t len = strlen(names[i]);
		char *path;

		if (len < 5 || strcmp(names[i] + len - 4, ".pem") != 0)
			continue;
		if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		r = add_pem_file(t, path);
		free(path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int cfs_trust_load(struct cfs_trust **out, const char *const *paths, size_t n,
		   const char *dir)
{
	struct cfs_trust *t = calloc(1, sizeof(*t));
	int r = 0;

	*out = NULL;
	if (!t || !(t->certs = sk_X509_new_null())) {
		free(t);
		return -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		r = add_pem_file(t, paths[i]);
	if (r == 0 && dir)
		r = add_dir(t, dir);
	if (r < 0) {
		cfs_trust_free(t);
		return r;
	}
	*out = t;
	return 0;
}

size_t cfs_trust_count(const struct cfs_trust *t)
{
	return t ? (size_t)sk_X509_num(t->certs) : 0;
}

void cfs_trust_free(struct cfs_trust *t)
{
	if (!t)
		return;
	sk_X509_pop_free(t->certs, X509_free);
	free(t);
}

static void name_text(const X509_NAME *name, char *out, size_t size)
{
	if (!X509_NAME_oneline(name, out, (int)size))
		snprintf(out, size, "?");
}

int cfs_verify_digest(const struct cfs_trust *t, const uint8_t *sig,
		      size_t sig_len, const uint8_t digest[CFS_DIGEST_SIZE],
		      char *signer, size_t signer_size)
{
	uint8_t data[FORMATTED_SIZE];
	const unsigned char *p = sig;
	STACK_OF(PKCS7_SIGNER_INFO) * sis;
	STACK_OF(X509) *one = NULL;
	PKCS7_ISSUER_AND_SERIAL *ias;
	PKCS7 *p7 = NULL;
	X509 *cert = NULL;
	BIO *db = NULL;
	char *serial = NULL;
	BIGNUM *bn = NULL;
	int r = 0;

	snprintf(signer, signer_size, "?");
	p7 = sig_len <= LONG_MAX ? d2i_PKCS7(NULL, &p, (long)sig_len) : NULL;
	if (!p7 || p != sig + sig_len || !PKCS7_type_is_signed(p7) ||
	    !(sis = PKCS7_get_signer_info(p7)) ||
	    sk_PKCS7_SIGNER_INFO_num(sis) != 1) {
		ERR_clear_error();
		r = cfs_error(EBADMSG, "not a DER PKCS#7 signature with one "
				       "signer");
		goto out;
	}
	ias = sk_PKCS7_SIGNER_INFO_value(sis, 0)->issuer_and_serial;
	for (int i = 0; i < sk_X509_num(t->certs); i++) {
		X509 *c = sk_X509_value(t->certs, i);

		if (X509_NAME_cmp(X509_get_issuer_name(c), ias->issuer) == 0 &&
		    ASN1_INTEGER_cmp(X509_get0_serialNumber(c), ias->serial) ==
			    0) {
			cert = c;
			break;
		}
	}
	if (!cert) {
		char issuer[256];

		name_text(ias->issuer, issuer, sizeof(issuer));
		bn = ASN1_INTEGER_to_BN(ias->serial, NULL);
		serial = bn ? BN_bn2hex(bn) : NULL;
		snprintf(signer, signer_size, "issuer %s, serial %s", issuer,
			 serial ? serial : "?");
		r = cfs_error(EKEYREJECTED,
			      "signed by a certificate that is not trusted "
			      "(%s)",
			      signer);
		goto out;
	}
	name_text(X509_get_subject_name(cert), signer, signer_size);
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		r = cfs_error(EKEYEXPIRED,
			      "signed by %s, whose certificate is not valid "
			      "now",
			      signer);
		goto out;
	}
	formatted_digest(digest, data);
	db = BIO_new_mem_buf(data, sizeof(data));
	one = sk_X509_new_null();
	if (!db || !one || !sk_X509_push(one, cert)) {
		r = -ENOMEM;
		goto out;
	}
	/* The trust is the list itself (as for the kernel's keyring): no
	 * chain to build, only the signature to check. */
	if (PKCS7_verify(p7, one, NULL, db, NULL,
			 PKCS7_BINARY | PKCS7_NOINTERN | PKCS7_NOVERIFY) != 1) {
		ERR_clear_error();
		r = cfs_error(EBADMSG,
			      "signature by %s is not one of this digest",
			      signer);
	}
out:
	sk_X509_free(one);
	OPENSSL_free(serial);
	BN_free(bn);
	BIO_free(db);
	PKCS7_free(p7);
	return r;
}

char *cfs_base64_encode(const uint8_t *data, size_t len)
{
	char *out;

	if (len > INT_MAX / 2)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int cfs_base64_decode(const char *text, uint8_t **out, size_t *out_len)
{
	size_t len = strlen(text), pad = 0;
	uint8_t *buf;
	int n;

	*out = NULL;
	if (len == 0 || len % 4 || len > INT_MAX / 2)
		return -EINVAL;
	if (text[len - 1] == '=')
		pad++;
	if (text[len - 2] == '=')
		pad++;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*out_len = (size_t)n - pad;
	return 0;
}
