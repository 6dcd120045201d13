#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The layout half of the ABI: what the public headers compile into users' code.

Users' binaries hold, compiled in, the size, alignment and member offsets of
every struct and union they allocate, embed or read (and the inline fast
paths of pool_inline.h and spsc_inline.h read the pool's and the ring's own
structs), the values of the enums and of the RP_* integer macros, and the
types of the objects those inline paths reach; their calls into the library
are compiled against each function's type. tests/abi/ringplane-<ABI>.layout is
that for the ABI version the soname carries; `check` fails when the
headers no longer match it, so a layout change cannot ship without a bump.

How (see CONTRIBUTING.md, "ABI"):
- clang's JSON AST of one file that includes every include/ringplane/*.h
  names the entities declared in those headers (records with their members,
  typedefs, enums and their constants, extern objects, functions); a typedef
  of an unnamed struct, union or enum is paired with it by the AST id its
  type owns (clang spells that type "union T", not "(unnamed ...)"); the
  preprocessor's -dD output names the object-like macros they define;
- a C program generated from that list and built with the C compiler (cc,
  or $CC: the compiler users build with) prints each sizeof, _Alignof,
  offsetof and member size, a bitfield's bit position and width (found by
  setting it to all ones in a zeroed object), and each constant's value;
- the text is one block per entity, sorted: deterministic for a given tree.

Usage:
  abi_layout.py dump   [--root DIR]               the layout text on stdout
  abi_layout.py check  [--root DIR] [--abi X.Y]   compare with the snapshot
  abi_layout.py update [--root DIR] [--abi X.Y]   write or extend the snapshot
--abi defaults to major.minor of the version in meson.build. Exit status of
check: 0 same, 1 differs or no snapshot, 77 not an x86_64 host (the
snapshot is for x86_64), 2 the tool itself failed (clang or cc missing...).
"""
import argparse
import difflib
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

FORMAT = 1
ARCH = "x86_64"
CFLAGS = ["-std=gnu11", "-D_GNU_SOURCE"]


class ToolError(Exception):
    pass


def run(cmd, **kw):
    try:
        return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)
    except FileNotFoundError as e:
        raise ToolError("%s not found (%s): install it (./dev.sh deps installs clang)" %
                        (cmd[0], e)) from e


def tool_cmd(var, default):
    """$CC or $CLANG as a command line: CC="ccache gcc" is ccache running gcc."""
    cmd = shlex.split(os.environ.get(var) or default)
    if not cmd:
        raise ToolError("$%s is empty" % var)
    return cmd


def anon(s):
    """A type spelling without the paths clang puts in unnamed types."""
    # clang spells a member's unnamed type "union outer::(anonymous at F:L:C)"
    return re.sub(r"(?:\w+::)*\((?:unnamed|anonymous)(?: (?:struct|union|enum))? at [^)]*\)",
                  "(anonymous)", s)


def type_of(node):
    return anon(node.get("type", {}).get("qualType", "?"))


class Headers:
    """The entities declared in include/ringplane/*.h, from clang's AST."""

    def __init__(self, root, tmp):
        self.inc = os.path.join(root, "include")
        hdir = os.path.realpath(os.path.join(self.inc, "ringplane"))
        self.headers = sorted(os.path.basename(p) for p in glob.glob(hdir + "/*.h"))
        if not self.headers:
            raise ToolError("no headers in %s" % hdir)
        self.hdir = hdir
        self.tu = os.path.join(tmp, "abi_tu.c")
        with open(self.tu, "w", encoding="utf-8") as f:
            for h in self.headers:
                f.write("#include <ringplane/%s>\n" % h)
        self.records = []  # (key, C type, node)
        self.enums = []  # (key, C type, node)
        self.consts = []  # (name, enum key or None)
        self.typedefs = []  # (name, type spelling)
        self.objects = []  # (name, type spelling, tls, complete)
        self.macros = []  # names
        self.funcs = []  # (name, type spelling)
        self._unnamed = {}  # AST id -> unnamed file-scope record or enum
        self._unnamed_consts = {}  # AST id of an unnamed enum -> its first const
        self._ast()
        self._macros()

    def ours(self, path):
        return path is not None and os.path.dirname(os.path.realpath(path)) == self.hdir

    def _ast(self):
        clang = tool_cmd("CLANG", "clang")
        r = run([*clang, "-fsyntax-only", *CFLAGS, "-I", self.inc, "-Xclang", "-ast-dump=json",
                 self.tu])
        if r.returncode != 0:
            raise ToolError("%s could not parse the public headers:\n%s" %
                            (" ".join(clang), r.stderr))
        ast = json.loads(r.stdout)
        # The JSON dump names a location's file only where it differs from
        # the one printed before, so follow every location in print order.
        cur = [None]

        def walk(n):
            if isinstance(n, dict):
                if "offset" in n and "file" in n:
                    cur[0] = n["file"]
                for k, v in n.items():
                    if k != "includedFrom":
                        walk(v)
            elif isinstance(n, list):
                for v in n:
                    walk(v)

        typedef_named = {}
        for d in ast.get("inner", []):
            walk(d.get("loc", {}))
            where = cur[0]
            walk({k: v for k, v in d.items() if k != "loc"})
            if not self.ours(where):
                continue
            self._decl(d, typedef_named)
        # an unnamed struct given a name by a typedef is laid out under it
        for name, node in typedef_named.items():
            self.records.append(("typedef " + name, name, node))

    def _decl(self, d, typedef_named, nested=False):
        kind = d.get("kind")
        if kind == "RecordDecl" and d.get("completeDefinition"):
            if d.get("name"):
                tag = d["tagUsed"] + " " + d["name"]
                self.records.append((tag, tag, d))
            elif not nested:
                self._unnamed[d.get("id")] = d
            # named records defined inside a record are file-scope types in C
            for m in d.get("inner", []):
                if m.get("kind") in ("RecordDecl", "EnumDecl"):
                    self._decl(m, typedef_named, nested=True)
        elif kind == "EnumDecl":
            key = "enum " + d["name"] if d.get("name") else None
            if key:
                self.enums.append((key, key, d))
            elif not nested:
                # an unnamed enum given a name by a typedef: its constants
                # are listed once the typedef names it (or as they are)
                self._unnamed[d.get("id")] = d
                self._unnamed_consts[d.get("id")] = len(self.consts)
            for c in d.get("inner", []):
                if c.get("kind") == "EnumConstantDecl":
                    self.consts.append((c["name"], key))
        elif kind == "TypedefDecl":
            # `typedef struct {...} T;`: the typedef's type owns the record
            # (clang spells it "struct T", so match the record by its AST id)
            inner = (d.get("inner") or [{}])[0]
            owned = inner.get("ownedTagDecl", {}).get("id") \
                if inner.get("kind") == "ElaboratedType" else None
            tag = self._unnamed.pop(owned, None) if owned else None
            if tag is not None and tag.get("kind") == "RecordDecl":
                typedef_named[d["name"]] = tag
            elif tag is not None:
                key = "typedef " + d["name"]
                self.enums.append((key, d["name"], tag))
                first = self._unnamed_consts.pop(owned)
                for i in range(first, first + sum(
                        1 for c in tag.get("inner", []) if c.get("kind") == "EnumConstantDecl")):
                    self.consts[i] = (self.consts[i][0], key)
            self.typedefs.append((d["name"], type_of(d)))
        elif kind == "VarDecl" and d.get("storageClass") == "extern":
            t = type_of(d)
            self.objects.append((d["name"], t, bool(d.get("tls")), not t.endswith("[]")))
        elif (kind == "FunctionDecl" and d.get("storageClass") != "static"
              and not d.get("isImplicit")):
            # what a caller's binary was compiled against: return and
            # parameter types (a static inline one is compiled into it whole)
            self.funcs.append((d["name"], type_of(d)))

    def _macros(self):
        cc = tool_cmd("CC", "cc")
        r = run([*cc, "-E", "-dD", *CFLAGS, "-I", self.inc, self.tu])
        if r.returncode != 0:
            raise ToolError("%s -E failed on the public headers:\n%s" % (" ".join(cc), r.stderr))
        cur, defs = None, {}
        for line in r.stdout.splitlines():
            m = re.match(r'^# \d+ "([^"]*)"', line)
            if m:
                cur = m.group(1)
                continue
            m = re.match(r"^#define ([A-Za-z_]\w*)(\(?)\s*(.*)$", line)
            if m and self.ours(cur):
                name, fn, body = m.groups()
                if fn or not body or '"' in body or "'" in body:
                    defs.pop(name, None)  # function-like, empty (a guard) or a string
                else:
                    defs[name] = body
            m = re.match(r"^#undef (\w+)", line)
            if m:
                defs.pop(m.group(1), None)
        self.macros = sorted(defs)


class Program:
    """A generated C program whose output is the numbers the compiler chose."""

    def __init__(self, hdr):
        self.hdr = hdr
        self.lines = []
        self.n = 0
        self.bufs = []  # the records whose bitfields are found in rp_abi_buf

    def q(self, fmt, *exprs):
        """Queue a printf of exprs; returns the query's id."""
        self.n += 1
        self.lines.append('\tprintf("%d %s\\n", %s);' % (self.n, fmt, ", ".join(exprs)))
        return self.n

    def raw(self, code):
        self.lines.append(code)

    def source(self, skip=()):
        out = ["#include <stdio.h>", "#include <string.h>", "#include <stddef.h>"]
        out += ["#include <ringplane/%s>" % h for h in self.hdr.headers]
        # scratch as large and as aligned as the largest record with a bitfield
        out.append("static union {\n\tchar none;")
        out += ["\t_Alignas(%s) char b%d[sizeof(%s)];" % (t, i, t) for i, t in enumerate(self.bufs)]
        out.append("} rp_abi_buf;")
        out.append("static void rp_abi_bits(int id, const void *p, size_t n)")
        out.append("{\n\tsize_t i, lo = (size_t)-1, w = 0;")
        out.append("\tfor (i = 0; i < n * 8; i++)")
        out.append("\t\tif (((const unsigned char *)p)[i / 8] >> (i % 8) & 1) {")
        out.append("\t\t\tif (lo == (size_t)-1) lo = i;\n\t\t\tw++;\n\t\t}")
        out.append('\tprintf("%d %zu %zu\\n", id, lo, w);\n}')
        out.append("int main(void)\n{")
        out += [line for i, line in enumerate(self.lines) if i not in skip]
        out.append("\treturn 0;\n}")
        return "\n".join(out) + "\n"

    def build_and_run(self, tmp, macro_lines):
        cc = tool_cmd("CC", "cc")
        src = os.path.join(tmp, "abi_prog.c")
        exe = os.path.join(tmp, "abi_prog")
        skip = set()
        # A macro that is not an integer constant (a type, an attribute, a
        # float) fails to compile: leave it out and build again.
        for _ in range(len(macro_lines) + 1):
            with open(src, "w", encoding="utf-8") as f:
                f.write(self.source(skip))
            r = run([*cc, *CFLAGS, "-w", "-I", self.hdr.inc, "-o", exe, src])
            if r.returncode == 0:
                break
            bad = set()
            text = self.source(skip).splitlines()
            # gcc may place the error in the header that defines the macro
            # and name abi_prog.c's line only in an "in expansion of macro" note
            for m in re.finditer(r"abi_prog\.c:(\d+):\d+: (?:fatal )?(?:error|note)",
                                 r.stderr):
                ln = text[int(m.group(1)) - 1]
                for i in macro_lines:
                    if i not in skip and self.lines[i] == ln:
                        bad.add(i)
            if not bad:
                raise ToolError("%s could not build the layout program:\n%s" %
                                (" ".join(cc), r.stderr))
            skip |= bad
        else:
            raise ToolError("could not build the layout program")
        r = run([exe])
        if r.returncode != 0:
            how = ("killed by signal %d" % -r.returncode if r.returncode < 0 else
                   "exit status %d" % r.returncode)
            raise ToolError("the layout program failed (%s): %s" % (how, r.stderr))
        vals = {}
        for line in r.stdout.splitlines():
            i, rest = line.split(" ", 1)
            vals[int(i)] = rest
        return vals


def members(prog, ctype, node, path, depth, out):
    """Queue the members of a record (unnamed nested records expanded)."""
    for m in node.get("inner", []):
        if m.get("kind") != "FieldDecl":
            continue
        name = m.get("name")
        t = type_of(m)
        ind = "\t" * depth
        # an array of an unnamed record lists its first element's members
        dims = re.search(r"(\[\d+\])+$", t)
        unnamed_type = re.match(r"^(struct|union) \(anonymous\)(\[\d+\])*$", t)
        sub = None
        if unnamed_type:
            # its definition is the RecordDecl just before it
            prev = None
            for x in node["inner"]:
                if x is m:
                    break
                if x.get("kind") == "RecordDecl":
                    prev = x
            sub = prev
        if not name:
            if m.get("isBitfield"):
                continue  # unnamed bitfield: padding, seen in the next offsets
            out.append((ind + "%s:" % t, None))
            members(prog, ctype, sub or {}, path, depth + 1, out)
            continue
        p = path + [name]
        expr = ".".join(p)
        if m.get("isBitfield"):
            if ctype not in prog.bufs:
                prog.bufs.append(ctype)
            prog.raw("\tmemset(&rp_abi_buf, 0, sizeof(%s));" % ctype)
            prog.raw("\t((%s *)&rp_abi_buf)->%s = -1;" % (ctype, expr))
            prog.n += 1
            prog.raw("\trp_abi_bits(%d, &rp_abi_buf, sizeof(%s));" % (prog.n, ctype))
            out.append((ind + "bits @%%s %s: %s" % (name, t), ("bits", prog.n)))
        elif t.endswith("[]"):
            qid = prog.q("%zu", "offsetof(%s, %s)" % (ctype, expr))
            out.append((ind + "@%%s flexible %s: %s" % (name, t), ("one", qid)))
        else:
            qid = prog.q("%zu %zu", "offsetof(%s, %s)" % (ctype, expr),
                         "sizeof(((%s *)0)->%s)" % (ctype, expr))
            out.append((ind + "@%%s size %%s %s: %s" % (name, t), ("two", qid)))
            if sub is not None:
                if dims:
                    p = path + [name + "[0]" * dims.group(0).count("[")]
                members(prog, ctype, sub, p, depth + 1, out)


def value_expr(e):
    """printf arguments for an integer constant's value, sign and size."""
    return ("%s %lld %llu %zu",
            ['((%s) - (%s) - 1 < 0 ? "signed" : "unsigned")' % (e, e), "(long long)(%s)" % e,
             "(unsigned long long)(%s)" % e, "sizeof(%s)" % e])


def fmt_value(v):
    sign, s, u, size = v.split()
    return "%s (%s, %s bytes)" % (s if sign == "signed" else u, sign, size)


def layout(root):
    """The layout text of the headers under root."""
    tmp = tempfile.mkdtemp(prefix="rp-abi-")
    try:
        hdr = Headers(root, tmp)
        prog = Program(hdr)
        blocks = {}
        pending = []  # (key, [(template, query)])
        for key, ctype, node in hdr.records:
            qid = prog.q("%zu %zu", "sizeof(%s)" % ctype, "_Alignof(%s)" % ctype)
            lines = [("%s: size %%s, align %%s" % key, ("two", qid))]
            members(prog, ctype, node, [], 1, lines)
            pending.append((key, lines))
        for key, ctype, node in hdr.enums:
            qid = prog.q("%zu %zu %s", "sizeof(%s)" % ctype, "_Alignof(%s)" % ctype,
                         '((%s)-1 < 0 ? "signed" : "unsigned")' % ctype)
            pending.append((key, [("%s: size %%s, align %%s, %%s" % key, ("three", qid))]))
        for name, enum in hdr.consts:
            fmt, args = value_expr(name)
            qid = prog.q(fmt, *args)
            pending.append(("const " + name,
                            [("const %s = %%s%s" % (name, " in " + enum if enum else ""),
                              ("value", qid))]))
        laid_out = {k for k, _, _ in hdr.records} | {k for k, _, _ in hdr.enums}
        for name, t in hdr.typedefs:
            if "typedef " + name not in laid_out:
                blocks["typedef " + name] = "typedef %s: %s" % (name, t)
        for name, t in hdr.funcs:
            line = "func %s: %s" % (name, t)
            if blocks.get("func " + name, line) != line:
                raise ToolError("func %s is declared twice, differently" % name)
            blocks["func " + name] = line
        for name, t, tls, complete in hdr.objects:
            lines = "object %s: %s%s" % (name, t, ", thread-local" if tls else "")
            if complete:
                qid = prog.q("%zu", "sizeof(%s)" % name)
                pending.append(("object " + name, [(lines + ", size %s", ("one", qid))]))
            else:
                blocks["object " + name] = lines
        macro_lines = []
        for name in hdr.macros:
            fmt, args = value_expr(name)
            qid = prog.q(fmt, *args)
            # only an integer constant expression passes the static assert
            # (a call to an undeclared function would otherwise compile and
            # then fail to link); what fails is left out, named below
            prog.lines[-1] = '\t_Static_assert((%s) || 1, "%s");%s' % (name, name,
                                                                        prog.lines[-1])
            macro_lines.append(len(prog.lines) - 1)
            pending.append(("macro " + name, [("macro %s = %%s" % name, ("value", qid))]))
        vals = prog.build_and_run(tmp, macro_lines)
        skipped = [n for n, i in zip(hdr.macros, macro_lines) if prog.lines[i] and
                   int(re.search(r'printf\("(\d+) ', prog.lines[i]).group(1)) not in vals]
        if skipped:
            print("abi_layout.py: not integer constants, not recorded: %s" % ", ".join(skipped),
                  file=sys.stderr)
        for key, lines in pending:
            text = []
            for tmpl, q in lines:
                if q is None:
                    text.append(tmpl)
                    continue
                how, qid = q
                if qid not in vals:
                    text = None  # a macro that is no integer constant
                    break
                v = vals[qid].split()
                if how == "value":
                    text.append(tmpl % fmt_value(vals[qid]))
                elif how == "bits":
                    text.append(tmpl % ("%d.%d width %s" % (int(v[0]) // 8, int(v[0]) % 8, v[1])))
                elif how == "one":
                    text.append(tmpl % v[0])
                elif how == "two":
                    text.append(tmpl % (v[0], v[1]))
                else:
                    text.append(tmpl % (v[0], v[1], v[2]))
            if text is not None:
                if key in blocks and blocks[key] != "\n".join(text):
                    raise ToolError("%s is declared twice, differently" % key)
                blocks[key] = "\n".join(text)
        return blocks
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def header(abi):
    return ("# ringplane ABI %s: the layouts and constants the public headers compile into\n"
            "# users' code (tools/abi_layout.py, format %d, %s). Not edited by hand:\n"
            "# CONTRIBUTING.md (ABI) says how to bump the version and regenerate.\n" %
            (abi, FORMAT, ARCH))


def render(abi, blocks):
    """One line per constant, typedef or object; a record or enum is a block
    of its own, its members indented by a tab."""
    out = [header(abi)]
    for k in sorted(blocks):
        out.append(("\n%s\n\n" if "\n" in blocks[k] else "%s\n") % blocks[k])
    return re.sub(r"\n{3,}", "\n\n", "".join(out))


def parse(text):
    blocks, cur = {}, None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            cur = None
            continue
        if line.startswith("\t"):
            if cur is None:
                raise ToolError("snapshot: member line outside a block: %r" % line)
            blocks[cur] += "\n" + line
        else:
            cur = line.split(":", 1)[0].split(" = ", 1)[0]
            blocks[cur] = line
    return blocks


def project_abi(root):
    with open(os.path.join(root, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"version\s*:\s*'(\d+)\.(\d+)\.\d+'", f.read())
    if not m:
        raise ToolError("no version in %s/meson.build" % root)
    return "%s.%s" % m.groups()


def snapshot_path(root, abi):
    return os.path.join(root, "tests", "abi", "ringplane-%s.layout" % abi)


def compare(old, new):
    changed = sorted(k for k in old if k in new and old[k] != new[k])
    removed = sorted(k for k in old if k not in new)
    added = sorted(k for k in new if k not in old)
    return changed, removed, added


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("cmd", choices=["dump", "check", "update"])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--abi")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    try:
        abi = a.abi or project_abi(root)
        if platform.machine() != ARCH:
            print("SKIP: the layout snapshots are for %s, this host is %s" %
                  (ARCH, platform.machine()))
            return 77
        new = layout(root)
        if a.cmd == "dump":
            sys.stdout.write(render(abi, new))
            return 0
        path = snapshot_path(root, abi)
        rel = os.path.relpath(path, root)
        regen = "python3 tools/abi_layout.py update"
        if not os.path.exists(path):
            if a.cmd == "update":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(render(abi, new))
                print("wrote %s: the baseline of ABI %s (%d entities); commit it" %
                      (rel, abi, len(new)))
                return 0
            print("FAIL: no layout snapshot for ABI %s (%s).\n"
                  "A new ABI version records its baseline: run `%s` and commit %s." %
                  (abi, rel, regen, rel))
            return 1
        with open(path, encoding="utf-8") as f:
            old_text = f.read()
        old = parse(old_text)
        changed, removed, added = compare(old, new)
        if changed or removed:
            diff = difflib.unified_diff(render(abi, old).splitlines(),
                                        render(abi, new).splitlines(),
                                        rel, "include/ringplane/*.h (now)", lineterm="", n=2)
            print("\n".join(diff))
            nxt = abi.split(".")
            nxt = "%s.%d" % (nxt[0], int(nxt[1]) + 1)
            print("\nFAIL: the public headers no longer match ABI %s (%s):" % (abi, rel))
            for k in changed:
                print("  changed: %s" % k)
            for k in removed:
                print("  removed: %s" % k)
            print("Binaries built against libringplane.so.%s would read these wrongly.\n"
                  "Either bump the version in meson.build (%s.x -> %s.0, so the soname becomes\n"
                  "libringplane.so.%s) and record the new baseline with `%s`,\n"
                  "or revert the change." % (abi, abi, nxt, nxt, regen))
            return 1
        if a.cmd == "update" and (added or render(abi, old) != old_text):
            # additions, or a snapshot not in the tool's format: rewritten
            with open(path, "w", encoding="utf-8") as f:
                f.write(render(abi, {**old, **new}))
            if added:
                print("%s: recorded %d addition(s): %s" % (rel, len(added),
                                                           ", ".join(added)))
            else:
                print("%s: rewritten in the tool's format, nothing changed" % rel)
            return 0
        if added:
            diff = difflib.unified_diff(render(abi, old).splitlines(),
                                        render(abi, new).splitlines(),
                                        rel, "include/ringplane/*.h (now)", lineterm="", n=0)
            print("\n".join(diff))
            print("\nFAIL: new public types or constants, not yet in %s:" % rel)
            for k in added:
                print("  added: %s" % k)
            print("Additions are compatible (no binary built against ABI %s uses them), so no\n"
                  "bump is needed: record them with `%s` and commit %s." % (abi, regen, rel))
            return 1
        if render(abi, old) != old_text:
            print("FAIL: %s is not in the tool's format (edited by hand?): run `%s`" %
                  (rel, regen))
            return 1
        print("ok: ABI %s layout matches %s (%d structs, unions, enums, constants, typedefs, "
              "objects and functions)" % (abi, rel, len(new)))
        return 0
    except ToolError as e:
        print("ERROR: abi_layout.py: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
