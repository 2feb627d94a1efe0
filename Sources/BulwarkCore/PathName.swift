/// Path arithmetic on plain strings, byte by byte. Foundation's `NSString` path methods trap on
/// some short names on Linux (`("k" as NSString).deletingLastPathComponent` is an illegal
/// instruction), so no file-taking flag may reach them: every path a user names goes through
/// these instead.
public enum PathName {
    /// The directory part of `path`: "" for a bare file name ("k"), "/" for a file in the root.
    public static func directory(of path: String) -> String {
        var bytes = Array(path.utf8)
        while bytes.count > 1, bytes.last == 0x2f { bytes.removeLast() }
        guard let slash = bytes.lastIndex(of: 0x2f) else { return "" }
        var end = slash
        while end > 0, bytes[end - 1] == 0x2f { end -= 1 }
        return end == 0 ? "/" : String(decoding: bytes[..<end], as: UTF8.self)
    }

    /// The last component of `path` (trailing slashes ignored); `path` itself when it has none.
    public static func lastComponent(of path: String) -> String {
        var bytes = Array(path.utf8)
        while bytes.count > 1, bytes.last == 0x2f { bytes.removeLast() }
        guard let slash = bytes.lastIndex(of: 0x2f), bytes.count > 1 else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes[(slash + 1)...], as: UTF8.self)
    }

    /// `directory` and `name` joined by one slash; `name` alone when `directory` is empty.
    public static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
