# mk/package.mk -- included by the top Makefile: installing, the Debian
# package and the API reference.
#
#   make install [PREFIX=/usr/local] [DESTDIR=...]   binary, Lua module and
#       Lua files, liblgrad (static and shared), headers, lgrad.pc, man page
#   make uninstall [PREFIX=...]     removes exactly those files again
#   make doc                        the API reference, build/doc/index.html
#   make deb                        build/deb/lgrad_<version>_amd64.deb
#   make deb-check                  lintian, then installs the package with
#       apt, runs debian/tests/installed against it and purges it (root)
#
# Directories follow the GNU names; LuaRocks passes its own (INST_PREFIX,
# INST_BINDIR, INST_LIBDIR for C modules, INST_LUADIR for Lua files), and
# debian/rules passes LIBDIR=/usr/lib/<multiarch>.

PREFIX ?= $(if $(INST_PREFIX),$(INST_PREFIX),/usr/local)
BINDIR ?= $(if $(INST_BINDIR),$(INST_BINDIR),$(PREFIX)/bin)
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PCDIR ?= $(LIBDIR)/pkgconfig
LUA_CMOD ?= $(if $(INST_LIBDIR),$(INST_LIBDIR),$(LIBDIR)/lua/5.4)
LUA_LMOD ?= $(if $(INST_LUADIR),$(INST_LUADIR),$(PREFIX)/share/lua/5.4)
# optional back ends add their link flags and pkg-config packages here
PC_LIBS_PRIVATE ?= $(LDLIBS_CORE)
PC_REQUIRES_PRIVATE ?=

LUA_FILES = $(wildcard bindings/lgrad/*.lua)
PUB_HDRS = runtime/lgrad.h runtime/nn.h bindings/lgrad_host.h

D = $(DESTDIR)
# the files `make install` writes, for uninstall
INSTALLED = $(BINDIR)/lgrad $(LUA_CMOD)/lgrad.so \
  $(LUA_FILES:bindings/%=$(LUA_LMOD)/%) \
  $(LIBDIR)/liblgrad.a $(LIBDIR)/liblgrad.so.$(VERSION) \
  $(LIBDIR)/liblgrad.so.$(SOVERSION) $(LIBDIR)/liblgrad.so \
  $(addprefix $(INCDIR)/lgrad/,$(notdir $(PUB_HDRS))) \
  $(INCDIR)/lgrad/ops/ops.def \
  $(PCDIR)/lgrad.pc $(MANDIR)/man1/lgrad.1

# ld.so's cache knows new libraries in its configured directories only
# after ldconfig (/usr/local/lib on Debian)
LDCONFIG = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
  cat /etc/ld.so.conf /etc/ld.so.conf.d/*.conf 2>/dev/null | \
  grep -qx '$(LIBDIR)'; then ldconfig; fi

install: lib
	install -d $(D)$(BINDIR) $(D)$(LUA_CMOD) $(D)$(LUA_LMOD)/lgrad \
	  $(D)$(LIBDIR) $(D)$(INCDIR)/lgrad/ops $(D)$(PCDIR) $(D)$(MANDIR)/man1
	install -m 755 $(B)/lgrad $(D)$(BINDIR)/lgrad
	install -m 644 $(B)/lgrad.so $(D)$(LUA_CMOD)/lgrad.so
	install -m 644 $(LUA_FILES) $(D)$(LUA_LMOD)/lgrad/
	install -m 644 $(B)/liblgrad.a $(D)$(LIBDIR)/liblgrad.a
	install -m 644 $(LIB_SO) $(D)$(LIBDIR)/liblgrad.so.$(VERSION)
	ln -sf liblgrad.so.$(VERSION) $(D)$(LIBDIR)/liblgrad.so.$(SOVERSION)
	ln -sf liblgrad.so.$(SOVERSION) $(D)$(LIBDIR)/liblgrad.so
	install -m 644 runtime/nn.h bindings/lgrad_host.h $(D)$(INCDIR)/lgrad/
	install -m 644 runtime/ops/ops.def $(D)$(INCDIR)/lgrad/ops/  # lgrad.h reads it
	sed 's/^#define LG_VERSION "unreleased"$$/#define LG_VERSION "$(VERSION)"/' \
	  runtime/lgrad.h > $(D)$(INCDIR)/lgrad/lgrad.h
	chmod 644 $(D)$(INCDIR)/lgrad/lgrad.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	  -e 's|@INCDIR@|$(INCDIR)|' -e 's|@LUA_LMOD@|$(LUA_LMOD)|' \
	  -e 's|@LUA_CMOD@|$(LUA_CMOD)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@PC_LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|' \
	  -e 's|@PC_REQUIRES_PRIVATE@|$(PC_REQUIRES_PRIVATE)|' \
	  lgrad.pc.in > $(D)$(PCDIR)/lgrad.pc
	chmod 644 $(D)$(PCDIR)/lgrad.pc
	install -m 644 doc/lgrad.1 $(D)$(MANDIR)/man1/lgrad.1
	@$(LDCONFIG)

# removes the files install wrote and the directories that are lgrad's
# alone; shared directories (bin, lib, share/lua/5.4, ...) stay
uninstall:
	rm -f $(addprefix $(D),$(INSTALLED))
	-rmdir $(D)$(LUA_LMOD)/lgrad $(D)$(INCDIR)/lgrad/ops $(D)$(INCDIR)/lgrad \
	  2>/dev/null
	@$(LDCONFIG)

# ---- the API reference (doc/api/*.luadoc, one file per module) ----
doc:
	@command -v ldoc >/dev/null || { echo "make doc needs ldoc" \
	  "(apt-get install lua-ldoc)"; exit 1; }
	ldoc -c doc/config.ld -d $(CURDIR)/$(B)/doc .
	@echo "API reference: $(B)/doc/index.html"

# ---- the Debian package ----
# built from a copy of the tree (dpkg-buildpackage cleans the tree it
# runs in), so build/ and build-san/ here are left alone
DEB_B = $(B)/deb
DEB_SRC = $(DEB_B)/lgrad-$(VERSION)
DEB_TOOLS = debhelper dpkg-dev fakeroot lintian
DEB_FILE = $(DEB_B)/lgrad_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null || echo amd64).deb

# the packaging tools, installed as `make deps` installs the others
deb-deps:
	@$(MAKE) --no-print-directory deps DEPS="$(DEB_TOOLS)" \
	  DEP_FILES="/usr/bin/dh /usr/bin/dpkg-buildpackage /usr/bin/fakeroot \
	  /usr/bin/lintian"

deb: deb-deps
	rm -rf $(DEB_B)
	mkdir -p $(DEB_SRC)
	tar -cf - --exclude=./build --exclude='./build-*' --exclude=./.git . | \
	  tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	@ls -l $(DEB_B)/*.deb

# lintian (errors fail), then the package installed for real: apt
# install, the checks in debian/tests/installed, apt purge, and no file
# of the package left behind
deb-check: deb
	lintian --fail-on error --tag-display-limit 0 $(DEB_FILE)
	@[ "$$(id -u)" = 0 ] || { echo "deb-check installs the package: run" \
	  "as root"; exit 1; }
	dpkg-deb -c $(DEB_FILE) | awk '{print $$6}' | sed 's|^\.||' | \
	  grep -v '/$$' > $(DEB_B)/files.txt
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./$(DEB_FILE)
	sh debian/tests/installed; rc=$$?; \
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq lgrad; \
	[ $$rc -eq 0 ] || exit $$rc
	@left=$$(while read -r f; do [ -e "$$f" ] || [ -L "$$f" ] && \
	  echo "$$f"; done < $(DEB_B)/files.txt); \
	if [ -n "$$left" ]; then echo "left after purge: $$left"; exit 1; fi; \
	echo "deb-check: installed, checked and purged; nothing left"

.PHONY: deb-deps
