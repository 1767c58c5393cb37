// The Java agent LocalStack's DynamoDB provider starts DynamoDB Local with (`-javaagent:` its
// ddb-local-loader jar, which it would otherwise download; without one, Java refuses to start and
// LocalStack restarts it in a tight loop). Ours does nothing: its patch lifts DynamoDB Local's
// limit of 20 GSIs per table, and our table has one. tools/common.sh builds it with javac + jar.
import java.lang.instrument.Instrumentation;

public final class NoopAgent {
    public static void premain(String args, Instrumentation instrumentation) {}
}
