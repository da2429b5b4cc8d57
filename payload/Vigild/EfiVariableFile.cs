using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Vigil.Agent;

/// <summary>
/// Reading and writing a UEFI variable through efivarfs. Reading: the file's bytes (4 bytes of attributes, then the
/// data). Writing: one write() of 4 bytes of attributes and the data. efivarfs makes
/// variables it does not know (every vendor's own) immutable, so the flag is cleared first and put back after
/// (FS_IOC_GETFLAGS/SETFLAGS, Documentation/filesystems/efivarfs.rst).
/// </summary>
internal static unsafe class EfiVariableFile
{
    private const nuint FsIocGetFlags = 0x80086601;   // _IOR('f', 1, long)
    private const nuint FsIocSetFlags = 0x40086602;   // _IOW('f', 2, long)
    private const int FsImmutableFl = 0x10;
    private const int ORdOnly = 0, OWrOnly = 1, OCreat = 0x40;

    /// <summary>
    /// The variable's file: its bytes (attributes first); null when it does not exist (<paramref name="why"/> empty) or
    /// cannot be read (<paramref name="why"/> says why).
    /// </summary>
    public static byte[]? Read(string path, out string why)
    {
        why = "";
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = $"cannot read {path}: {e.Message}";
            return null;
        }
    }

    /// <summary>Writes the variable (creating it when absent); null, or the reason it could not be written.</summary>
    public static string? Write(string path, uint attributes, ReadOnlySpan<byte> data)
    {
        bool existed = File.Exists(path);
        int flags = 0;
        if (existed)
        {
            int fd = Open(path, ORdOnly, 0);
            if (fd < 0) return $"cannot open {path}: {Error()}";
            try
            {
                if (Ioctl(fd, FsIocGetFlags, &flags) != 0) return $"cannot read the flags of {path}: {Error()}";
                if ((flags & FsImmutableFl) != 0)
                {
                    int cleared = flags & ~FsImmutableFl;
                    if (Ioctl(fd, FsIocSetFlags, &cleared) != 0) return $"cannot make {path} writable (chattr -i): {Error()}";
                }
            }
            finally
            {
                Close(fd);
            }
        }
        byte[] buffer = new byte[4 + data.Length];
        BitConverter.TryWriteBytes(buffer.AsSpan(0, 4), attributes);
        data.CopyTo(buffer.AsSpan(4));
        int wfd = Open(path, existed ? OWrOnly : OWrOnly | OCreat, 0x180);   // 0600
        if (wfd < 0) return $"cannot open {path} for writing: {Error()}";
        try
        {
            fixed (byte* p = buffer)
            {
                if (WriteFd(wfd, p, (nuint)buffer.Length) != buffer.Length) return $"cannot write {path}: {Error()}";
            }
        }
        finally
        {
            Close(wfd);
        }
        if (existed && (flags & FsImmutableFl) != 0)
        {
            int fd = Open(path, ORdOnly, 0);
            if (fd >= 0)
            {
                Ioctl(fd, FsIocSetFlags, &flags);   // put the immutable flag back; the write is done either way
                Close(fd);
            }
        }
        return null;
    }

    private static string Error() => Marshal.GetLastPInvokeErrorMessage();

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(int fd, nuint request, int* arg);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint WriteFd(int fd, byte* buffer, nuint count);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);
}
