/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * fs-verity built-in signatures: DER PKCS#7 over the kernel's
 * fsverity_formatted_digest ("FSVerity", le16 algorithm, le16 size,
 * digest), as FS_IOC_ENABLE_VERITY takes and `fsverity sign` writes
 * (no signed attributes, no certificates embedded).
 */
#ifndef CFS_SIGN_H
#define CFS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <cfs/common.h>

/* Sign the fs-verity SHA-256 digest @digest with the PEM private key
 * @key_path and its PEM certificate @cert_path. *@sig: malloc'ed DER. */
int cfs_sign_digest(const char *key_path, const char *cert_path,
		    const uint8_t digest[CFS_DIGEST_SIZE], uint8_t **sig,
		    size_t *sig_len);

/* Certificates a signature may come from (like the kernel's .fs-verity
 * keyring: each trusted as it is, no chains). */
struct cfs_trust;

/* Load every PEM certificate of @paths (@n of them) and, if @dir is not
 * NULL and exists, of the *.pem files in it (sorted by name). */
int cfs_trust_load(struct cfs_trust **out, const char *const *paths, size_t n,
		   const char *dir);
size_t cfs_trust_count(const struct cfs_trust *t);
void cfs_trust_free(struct cfs_trust *t);

/*
 * Check the DER signature @sig of the fs-verity SHA-256 digest @digest
 * against @t. 0 with the signer's subject in @signer; else -EBADMSG
 * (not a signature, or not of @digest), -EKEYREJECTED (no trusted
 * certificate made it: @signer names the issuer and serial it claims)
 * or -EKEYEXPIRED (made by a certificate outside its validity), with a
 * one-line message.
 */
int cfs_verify_digest(const struct cfs_trust *t, const uint8_t *sig,
		      size_t sig_len, const uint8_t digest[CFS_DIGEST_SIZE],
		      char *signer, size_t signer_size);

/* Base64 (RFC 4648, with padding, no line breaks). */
char *cfs_base64_encode(const uint8_t *data, size_t len);
int cfs_base64_decode(const char *text, uint8_t **out, size_t *out_len);

#endif
