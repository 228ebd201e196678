"""The texts of the carried Nuitka patch ``bytecode-outside-image`` (applied by :mod:`compile.nuitka_patches`).

Nuitka puts the bytecode of every module it does not compile (most of the standard library, and the
packages ``bytecode-packages`` / ``bytecode-modules`` name) into the constants blob, inside the
executable's image. Importing one of them reads its bytes through that mapping, and the kernel faults
in the neighbouring pages with it: 12.0 of the 13.3 MiB of bytecode were resident in an idle
standalone server, in every process the binary runs (server, training worker, resource tracker), on
every OS, and only Linux's startup release gave them back.

The patch moves that bytecode out of the image, into one file beside the executable
(:data:`BYTECODE_FILE_NAME`, a data file of the distribution, so the onefile payload carries it too):

- *code generation* (``LoaderCodes.py``): a module's bytecode goes to the file instead of the blob,
  and its loader entry records the offset and size, flagged ``NUITKA_BYTECODE_FILE_FLAG``. Technical
  modules (frozen, needed while the interpreter starts) stay in the blob: nothing can be read from a
  file before then;
- *loader* (``MetaPathBasedLoader.c``): importing such a module opens the file, reads exactly its bytes
  into a buffer, unmarshals them and frees the buffer, as CPython does with a ``.pyc``. Nothing of the
  file stays resident. Each module's bytes follow an 8-byte check of them (FNV-1a over 64-bit words: a
  CRC32 cost 22 M instructions of a 780 M startup, this a fraction of that): a missing, short or
  damaged file raises ``ImportError`` naming the module and the file, and never hands garbage to the
  unmarshaller.

Both halves apply together: the loader half comes first in :data:`compile.nuitka_patches.PATCHES`, so
a build never generates entries its loader cannot read.
"""

from __future__ import annotations

BYTECODE_FILE_NAME = "__bytecode.bin"  # beside the executable in every Nuitka build of the patched env
FILE_FLAG = 256  # NUITKA_BYTECODE_FILE_FLAG: unused by Nuitka's own flags (1..128)

MARKER = "peft-engine patch bytecode-outside-image"

# --- MetaPathBasedLoader.c ------------------------------------------------------------------------------

LOADER_READER_BEFORE = """// Pointers to bytecode data.
static char **_bytecode_data = NULL;
"""

LOADER_READER_AFTER = LOADER_READER_BEFORE + f"""
// {MARKER}: the bytecode of modules that are not compiled lives in a file beside
// the executable, not in its image; each import reads exactly its bytes and frees them once unmarshalled.
#define NUITKA_BYTECODE_FILE_FLAG {FILE_FLAG}
#define NUITKA_BYTECODE_FILE_NAME "{BYTECODE_FILE_NAME}"

#if _NUITKA_STANDALONE_MODE
static inline uint64_t readLittleEndian64(unsigned char const *bytes) {{
    uint64_t value;
    memcpy(&value, bytes, sizeof(value)); // one load, at any optimisation level
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    value = __builtin_bswap64(value);
#endif
    return value;
}}

// FNV-1a over 64-bit little-endian words, then the tail bytes: each step is a bijection, so any one
// damaged word changes the result; a fraction of the cost of a CRC32 (every module read at startup
// goes through it).
static uint64_t bytecodeCheck(unsigned char const *data, size_t size) {{
    uint64_t hash = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {{
        hash = (hash ^ readLittleEndian64(data + i)) * 0x100000001b3ULL;
    }}
    for (; i < size; i++) {{
        hash = (hash ^ data[i]) * 0x100000001b3ULL;
    }}
    return hash;
}}

static PyObject *readBytecodeOutsideImage(struct Nuitka_MetaPathBasedLoaderEntry const *entry) {{
    filename_char_t filename[MAXPATHLEN + 1];
    size_t const filename_size = sizeof(filename) / sizeof(filename_char_t);
#ifdef _WIN32
#if _NUITKA_ONEFILE_DLL_MODE
    filename_char_t const *base_directory = getDllDirectory();
#else
    filename_char_t const *base_directory = getBinaryDirectoryWideChars(true);
#endif
    copyStringSafeW(filename, base_directory, filename_size);
    appendWCharSafeW(filename, FILENAME_SEP_CHAR, filename_size);
    appendStringSafeW(filename, NUITKA_BYTECODE_FILE_NAME, filename_size);
    FILE *file = _wfopen(filename, L"rb");
#else
#if _NUITKA_ONEFILE_DLL_MODE
    filename_char_t const *base_directory = getDllDirectory();
#else
    filename_char_t const *base_directory = getBinaryDirectoryHostEncoded(true);
#endif
    copyStringSafe(filename, base_directory, filename_size);
    appendCharSafe(filename, FILENAME_SEP_CHAR, filename_size);
    appendStringSafe(filename, NUITKA_BYTECODE_FILE_NAME, filename_size);
    FILE *file = fopen(filename, "rb");
#endif
    // Each module's bytes follow their 8-byte check (bytecodeCheck, little endian): a damaged file is an
    // ImportError, never garbage handed to the unmarshaller.
    size_t const total = (size_t)entry->bytecode_size + 8;
    unsigned char *buffer = NULL;
    bool read_ok = file != NULL && entry->bytecode_size > 0 && (buffer = (unsigned char *)malloc(total)) != NULL &&
                   fseek(file, (long)entry->bytecode_index, SEEK_SET) == 0 && fread(buffer, 1, total, file) == total;
    if (file != NULL) {{
        fclose(file);
    }}
    bool intact = read_ok && bytecodeCheck(buffer + 8, (size_t)entry->bytecode_size) == readLittleEndian64(buffer);

    PyObject *result = intact ? PyMarshal_ReadObjectFromString((char *)buffer + 8, entry->bytecode_size) : NULL;
    free(buffer);

    if (unlikely(result == NULL || !PyCode_Check(result))) {{
        Py_XDECREF(result);
        char display_name[NUITKA_LOADER_NAME_MAX_LEN];
        Nuitka_LoaderEntryDisplayName(entry, display_name, sizeof(display_name));
        PyErr_Clear();
        PyErr_Format(PyExc_ImportError,
                     "cannot %s the bytecode of module '%s' (%d bytes at offset %d) in '%s' beside the "
                     "executable: the installation is incomplete or damaged; reinstall it",
                     read_ok ? "use" : "read", display_name, entry->bytecode_size, entry->bytecode_index,
                     NUITKA_BYTECODE_FILE_NAME);
        return NULL;
    }}
    return result;
}}
#endif
"""

LOADER_READ_BEFORE = """        PyCodeObject *code_object =
            (PyCodeObject *)PyMarshal_ReadObjectFromString(_bytecode_data[entry->bytecode_index], entry->bytecode_size);
"""

LOADER_READ_AFTER = """        PyCodeObject *code_object;
#if _NUITKA_STANDALONE_MODE
        if ((entry->flags & NUITKA_BYTECODE_FILE_FLAG) != 0) {
            // An unreadable file is an ImportError of this module, not an abort.
            code_object = (PyCodeObject *)readBytecodeOutsideImage(entry);
            if (unlikely(code_object == NULL)) {
                return NULL;
            }
        } else
#endif
            code_object = (PyCodeObject *)PyMarshal_ReadObjectFromString(_bytecode_data[entry->bytecode_index],
                                                                         entry->bytecode_size);
"""

# --- code_generation/LoaderCodes.py --------------------------------------------------------------------

CODEGEN_HELPERS_BEFORE = "def getModuleMetaPathLoaderEntryCode(module, bytecode_accessor, entry_name):\n"

CODEGEN_HELPERS_AFTER = f'''# {MARKER}: the bytecode of modules that are not compiled goes to
# one file beside the executable instead of the constants blob in its image, so that importing a module
# does not leave blob pages resident. Technical modules are frozen for interpreter startup and stay.
_outside_bytecode_chunks = []
_outside_bytecode_size = [0]


def _isBytecodeOutsideImage(module):
    if not isStandaloneMode() or shallMakeModule():
        return False
    technical = set(m.getFullName() for m in getUncompiledTechnicalModules())
    return module.getFullName() not in technical


def _bytecodeCheck(data):
    # The loader's bytecodeCheck: FNV-1a over 64-bit little-endian words, then the tail bytes.
    import struct

    mask, prime = 0xFFFFFFFFFFFFFFFF, 0x100000001B3
    value = 0xCBF29CE484222325
    whole = len(data) // 8 * 8
    for (word,) in struct.iter_unpack("<Q", data[:whole]):
        value = ((value ^ word) * prime) & mask
    for byte in bytearray(data[whole:]):
        value = ((value ^ byte) * prime) & mask
    return value


def _addBytecodeOutsideImage(code_data):
    import struct

    offset = _outside_bytecode_size[0]
    _outside_bytecode_chunks.append(struct.pack("<Q", _bytecodeCheck(code_data)))
    _outside_bytecode_chunks.append(code_data)
    _outside_bytecode_size[0] += 8 + len(code_data)
    assert _outside_bytecode_size[0] < 2**31, "bytecode file beyond the loader's int offsets"
    return offset


def _registerBytecodeOutsideImage():
    if not _outside_bytecode_chunks:
        return
    from nuitka.freezer.IncludedDataFiles import (
        addIncludedDataFile,
        makeIncludedGeneratedDataFile,
    )

    addIncludedDataFile(
        makeIncludedGeneratedDataFile(
            data=b"".join(_outside_bytecode_chunks),
            dest_path="{BYTECODE_FILE_NAME}",
            reason="bytecode of the modules that are not compiled, read when imported",
            tracer=inclusion_logger,
            tags="",
        )
    )


''' + CODEGEN_HELPERS_BEFORE

CODEGEN_ENTRY_BEFORE = """        accessor_code = bytecode_accessor.getBlobDataCode(
            data=code_data,
            name="bytecode of module '%s'" % module.getFullName(),
        )

        template_args["bytecode"] = accessor_code[accessor_code.find("[") + 1 : -1]
"""

CODEGEN_ENTRY_AFTER = f"""        if _isBytecodeOutsideImage(module):
            template_args["flags"].append("{FILE_FLAG}")  # NUITKA_BYTECODE_FILE_FLAG
            template_args["bytecode"] = _addBytecodeOutsideImage(code_data)
        else:
            accessor_code = bytecode_accessor.getBlobDataCode(
                data=code_data,
                name="bytecode of module '%s'" % module.getFullName(),
            )

            template_args["bytecode"] = accessor_code[accessor_code.find("[") + 1 : -1]
"""

CODEGEN_REGISTER_BEFORE = "    return template_metapath_loader_body % {\n"

CODEGEN_REGISTER_AFTER = "    _registerBytecodeOutsideImage()\n\n" + CODEGEN_REGISTER_BEFORE
