"""Prints josefk's public API from rustdoc's HTML (stable rustdoc, no network): every item path,
and for each struct, enum, trait, function and type alias its fields, variants, methods and trait
implementations as one line each, tags stripped. Blanket implementations are left out (they
follow from the others). Called by scripts/public-api.sh."""
import html
import os
import re
import sys

doc = sys.argv[1]
index = open(os.path.join(doc, "all.html"), encoding="utf-8").read()
lines = set()
# Re-exported types of other crates: their API is that crate's, so only the path is listed.
FOREIGN = {"josefk::Bytes"}


def text(fragment):
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


for href, name in re.findall(r'href="([^"]+\.html)">([^<]+)</a>', index):
    kind = os.path.basename(href).split(".")[0]
    if not re.fullmatch(r"[a-z]+", kind) or "/" not in href and kind in ("index", "all"):
        continue
    path = f"josefk::{name}"
    lines.add(f"{kind} {path}")
    if path in FOREIGN:
        continue
    page = open(os.path.join(doc, href), encoding="utf-8").read()
    page = page.split('id="blanket-implementations"')[0]
    decl = re.search(r'<pre class="rust item-decl">(.*?)</pre>', page, re.S)
    if decl and kind in ("fn", "type", "constant"):
        lines.add(f"{kind} {path}: {text(decl.group(1))}")
    for anchor, field in re.findall(
        r'<span id="((?:structfield|variant)\.[^"]+)" class="[^"]*">(.*?)</span>', page, re.S
    ):
        lines.add(f"{kind} {path}: {anchor}: {text(field).lstrip('§')}")
    # Inherent methods and every impl header; the methods inside trait impls are the trait's
    # (and its provided methods change with the toolchain), so they are left out.
    inherent = page.split('id="trait-implementations"')[0]
    for head in re.findall(r'<h4 class="code-header">(.*?)</h4>', inherent, re.S):
        lines.add(f"{kind} {path}: {text(head)}")
    for head in re.findall(r'<h3 class="code-header">(.*?)</h3>', page, re.S):
        lines.add(f"{kind} {path}: {text(head)}")

print("\n".join(sorted(lines)))
