/* SPDX-License-Identifier: MIT */
/*
 * A syntax check of JSON text (RFC 8259), so output of another program that
 * is embedded in our JSON file (ringplane-tune check --json) can never make
 * that file unreadable. Recursive descent, depth bounded.
 */
#include <stdbool.h>
#include <string.h>

#include "report_impl.h"

#define JSON_DEPTH_MAX 64

struct jv {
	const char *p, *end;
	int depth;
};

static bool jv_value(struct jv *v);

static void jv_ws(struct jv *v)
{
	while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
		v->p++;
}

static bool jv_eat(struct jv *v, char c)
{
	jv_ws(v);
	if (v->p < v->end && *v->p == c) {
		v->p++;
		return true;
	}
	return false;
}

static bool jv_string(struct jv *v)
{
	if (!jv_eat(v, '"'))
		return false;
	while (v->p < v->end) {
		unsigned char c = (unsigned char)*v->p++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (v->p >= v->end)
			return false;
		c = (unsigned char)*v->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, v->p++) {
				if (v->p >= v->end || !strchr("0123456789abcdefABCDEF", *v->p) || !*v->p)
					return false;
			}
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
	return false;
}

static bool jv_digits(struct jv *v)
{
	const char *s = v->p;

	while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
		v->p++;
	return v->p > s;
}

static bool jv_number(struct jv *v)
{
	if (v->p < v->end && *v->p == '-')
		v->p++;
	if (v->p < v->end && *v->p == '0')
		v->p++;
	else if (!jv_digits(v))
		return false;
	if (v->p < v->end && *v->p == '.') {
		v->p++;
		if (!jv_digits(v))
			return false;
	}
	if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
		v->p++;
		if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
			v->p++;
		if (!jv_digits(v))
			return false;
	}
	return true;
}

static bool jv_word(struct jv *v, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(v->end - v->p) < n || memcmp(v->p, w, n))
		return false;
	v->p += n;
	return true;
}

static bool jv_container(struct jv *v, char open, char close)
{
	if (!jv_eat(v, open) || ++v->depth > JSON_DEPTH_MAX)
		return false;
	if (jv_eat(v, close)) {
		v->depth--;
		return true;
	}
	do {
		if (open == '{' && (!jv_string(v) || !jv_eat(v, ':')))
			return false;
		if (!jv_value(v))
			return false;
	} while (jv_eat(v, ','));
	if (!jv_eat(v, close))
		return false;
	v->depth--;
	return true;
}

static bool jv_value(struct jv *v)
{
	jv_ws(v);
	if (v->p >= v->end)
		return false;
	switch (*v->p) {
	case '{': return jv_container(v, '{', '}');
	case '[': return jv_container(v, '[', ']');
	case '"': return jv_string(v);
	case 't': return jv_word(v, "true");
	case 'f': return jv_word(v, "false");
	case 'n': return jv_word(v, "null");
	default: return jv_number(v);
	}
}

bool rp_json_valid(const char *s, size_t len)
{
	struct jv v = { .p = s, .end = s + len, .depth = 0 };

	if (strlen(s) != len) /* a NUL inside */
		return false;
	if (!jv_value(&v))
		return false;
	jv_ws(&v);
	return v.p == v.end;
}
