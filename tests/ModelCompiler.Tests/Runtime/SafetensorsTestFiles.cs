using System.Buffers.Binary;
using System.Text;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Runtime;

/// <summary>A fresh folder under the system temp dir, deleted on Dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mc-rt-" + Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { } // best effort: a leftover temp folder must not fail a test
    }
}

/// <summary>Builders for hand-made (often broken) safetensors files, and shared assertions.</summary>
internal static class SafetensorsTestFiles
{
    public static string OraclePath(string model) =>
        Path.Combine(AppContext.BaseDirectory, "oracles", model, "model.safetensors");

    /// <summary>Writes an 8-byte length prefix (the header's true length unless overridden), the header, then data.</summary>
    public static void WriteRaw(string path, byte[] header, byte[] data, ulong? declaredHeaderLength = null)
    {
        using var stream = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, declaredHeaderLength ?? (ulong)header.Length);
        stream.Write(prefix);
        stream.Write(header);
        stream.Write(data);
    }

    public static void WriteRaw(string path, string headerJson, int dataLength = 64, ulong? declaredHeaderLength = null) =>
        WriteRaw(path, Encoding.UTF8.GetBytes(headerJson), new byte[dataLength], declaredHeaderLength);

    /// <summary>Asserts that opening the file fails with exactly ModelFormatException, on one line naming the file.</summary>
    public static ModelFormatException AssertOpenFails(string path, params string[] fragments)
    {
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path).Dispose());
        AssertOneLineNaming(error, Path.GetFileName(path), fragments);
        return error;
    }

    public static void AssertOneLineNaming(Exception error, string fileName, params string[] fragments)
    {
        Assert.Contains(fileName, error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
        foreach (string fragment in fragments) Assert.Contains(fragment, error.Message);
    }

    /// <summary>Opens the file and reads every tensor in every way its dtype allows.</summary>
    public static void OpenAndReadAll(string path)
    {
        using var file = SafetensorsFile.Open(path);
        foreach (var tensor in file.Tensors)
        {
            Assert.Equal(tensor.ByteLength, file.GetBytes(tensor.Name).Length);
            if (tensor.DType.IsFloat())
            {
                Assert.Equal(tensor.ElementCount, file.ReadFloat32(tensor.Name).Length);
                Assert.Equal(tensor.ElementCount, file.ReadFloat64(tensor.Name).Length);
            }
            else
            {
                Assert.Equal(tensor.ElementCount, file.ReadInt64(tensor.Name).Length);
            }
        }
    }

    /// <summary>A small valid file of several dtypes, a scalar and an empty tensor.</summary>
    public static void WriteSmallValidFile(string path) =>
        SafetensorsWriter.Write(path,
        [
            TensorData.FromFloat32("w", [2, 3], [1f, 2f, 3f, 4f, 5f, 6f]),
            TensorData.FromInt64("ids", [3], [7L, -8L, 9L]),
            new TensorData("h", DType.F16, [2], [0x00, 0x3C, 0x00, 0xC1]),
            TensorData.FromFloat64("scalar", [], [0.5]),
            TensorData.FromFloat32("empty", [0, 4], []),
        ],
        new Dictionary<string, string> { ["format"] = "pt" });
}
