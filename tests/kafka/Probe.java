// The tests' window on a running Kafka cluster, through Kafka's own Java clients (Admin, a
// producer, a consumer): what the cluster's metadata says, and what a client can write and read.
// Each command prints one JSON document on stdout; errors go to stderr with exit status 1.
//
//   Probe cluster BOOTSTRAP                       brokers (id, host, port, rack) and the controller
//   Probe create BOOTSTRAP TOPIC PARTITIONS RF    a topic placed by Kafka (no explicit assignment)
//   Probe describe BOOTSTRAP TOPIC                leader, replicas and ISR of every partition
//   Probe write-each BOOTSTRAP TOPIC TIMEOUT_MS   one acks=all record into each partition
//   Probe read-all BOOTSTRAP TOPIC                every record from the beginning to the end offsets
//   Probe quorum CONTROLLERS                      the KRaft metadata quorum, asked of the controllers
//                                                 themselves (`bootstrap.controllers`): leader,
//                                                 epoch, voters and observers with their offsets
//   Probe throttles BOOTSTRAP                     the replication throttle configs set on each broker
//                                                 (its own dynamic leader/follower rates) and each
//                                                 topic (its throttled-replica lists), by DescribeConfigs
//   Probe fill BOOTSTRAP TOPIC MIB                MIB MiB of 10 KiB records, acks=all, spread over
//                                                 the partitions
//   Probe client producer|consumer FILE TOPIC     a client built from a properties file as it is,
//                                                 asked for TOPIC's partitions (a metadata round trip)
//   Probe timed-send FILE TOPIC RATE BYTES SECONDS  a producer built from a properties file as it is
//                                                 sends RATE records a second of BYTES each for
//                                                 SECONDS, timing every send() call; then reads the
//                                                 topic back and counts acknowledged records missing
//
// The producer and consumer settings are Kafka's defaults except where a line below says why.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.stream.*;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;

public class Probe {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            usage();
        }
        if (args[0].equals("client")) {
            client(args[1], arg(args, 2), arg(args, 3));
            return;
        }
        if (args[0].equals("timed-send")) {
            timedSend(args[1], arg(args, 2), Integer.parseInt(arg(args, 3)), Integer.parseInt(arg(args, 4)),
                Integer.parseInt(arg(args, 5)));
            return;
        }
        String bootstrap = args[1];
        switch (args[0]) {
            case "cluster" -> cluster(bootstrap);
            case "create" -> create(bootstrap, arg(args, 2), Integer.parseInt(arg(args, 3)), Short.parseShort(arg(args, 4)));
            case "describe" -> describe(bootstrap, arg(args, 2));
            case "write-each" -> writeEach(bootstrap, arg(args, 2), Integer.parseInt(arg(args, 3)));
            case "read-all" -> readAll(bootstrap, arg(args, 2));
            case "quorum" -> quorum(bootstrap);
            case "throttles" -> throttles(bootstrap);
            case "fill" -> fill(bootstrap, arg(args, 2), Integer.parseInt(arg(args, 3)));
            default -> usage();
        }
    }

    static String arg(String[] args, int i) {
        if (i >= args.length) {
            usage();
        }
        return args[i];
    }

    static void usage() {
        System.err.println("usage: Probe cluster|create|describe|write-each|read-all|quorum|throttles|fill BOOTSTRAP [TOPIC ...]"
            + " | client KIND FILE TOPIC | timed-send FILE TOPIC RATE BYTES SECONDS");
        System.exit(2);
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // Fail a call within the tests' patience instead of Kafka's default minute.
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        return Admin.create(p);
    }

    static void cluster(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            DescribeClusterResult r = admin.describeCluster();
            Node controller = r.controller().get();
            List<Node> nodes = new ArrayList<>(r.nodes().get());
            nodes.sort(Comparator.comparingInt(Node::id));
            StringBuilder out = new StringBuilder("{\"cluster_id\":").append(str(r.clusterId().get()));
            out.append(",\"controller\":").append(controller == null ? "null" : controller.id());
            out.append(",\"brokers\":[");
            for (int i = 0; i < nodes.size(); i++) {
                Node n = nodes.get(i);
                out.append(i == 0 ? "" : ",").append("{\"id\":").append(n.id())
                    .append(",\"host\":").append(str(n.host()))
                    .append(",\"port\":").append(n.port())
                    .append(",\"rack\":").append(n.rack() == null ? "null" : str(n.rack())).append('}');
            }
            System.out.println(out.append("]}"));
        }
    }

    /** The metadata quorum as the controllers describe it (Kafka 3.7+: Admin over bootstrap.controllers). */
    static void quorum(String controllers) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.controllers", controllers);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        try (Admin admin = Admin.create(p)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get();
            StringBuilder out = new StringBuilder("{\"leader\":").append(q.leaderId())
                .append(",\"epoch\":").append(q.leaderEpoch())
                .append(",\"high_watermark\":").append(q.highWatermark())
                .append(",\"voters\":").append(replicas(q.voters()))
                .append(",\"observers\":").append(replicas(q.observers()));
            System.out.println(out.append('}'));
        }
    }

    static String replicas(List<QuorumInfo.ReplicaState> states) {
        return states.stream()
            .sorted(Comparator.comparingInt(QuorumInfo.ReplicaState::replicaId))
            .map(r -> "{\"id\":" + r.replicaId() + ",\"log_end_offset\":" + r.logEndOffset() + "}")
            .collect(Collectors.joining(",", "[", "]"));
    }

    static final List<String> THROTTLES = List.of(
        "leader.replication.throttled.rate", "follower.replication.throttled.rate",
        "leader.replication.throttled.replicas", "follower.replication.throttled.replicas");

    static void throttles(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            List<ConfigResource> resources = new ArrayList<>();
            for (Node n : admin.describeCluster().nodes().get()) {
                resources.add(new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(n.id())));
            }
            for (String t : new TreeSet<>(admin.listTopics().names().get())) {
                resources.add(new ConfigResource(ConfigResource.Type.TOPIC, t));
            }
            Map<ConfigResource, Config> configs = admin.describeConfigs(resources).all().get();
            StringBuilder brokers = new StringBuilder();
            StringBuilder topics = new StringBuilder();
            for (ConfigResource r : resources) {
                String set = configs.get(r).entries().stream()
                    .filter(e -> THROTTLES.contains(e.name()))
                    .filter(e -> e.source() == ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG
                        || e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG)
                    .filter(e -> e.value() != null && !e.value().isEmpty())
                    .sorted(Comparator.comparing(ConfigEntry::name))
                    .map(e -> str(e.name()) + ":" + str(e.value()))
                    .collect(Collectors.joining(","));
                if (set.isEmpty()) {
                    continue;
                }
                StringBuilder into = r.type() == ConfigResource.Type.BROKER ? brokers : topics;
                into.append(into.length() == 0 ? "" : ",").append(str(r.name())).append(":{").append(set).append('}');
            }
            System.out.println("{\"brokers\":{" + brokers + "},\"topics\":{" + topics + "}}");
        }
    }

    static void fill(String bootstrap, String topic, int mib) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        // Records spread over every partition, not batched into one by the sticky partitioner.
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        byte[] value = new byte[10 * 1024];
        new Random(7).nextBytes(value);
        int records = mib * 1024 / 10;
        try (Producer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < records; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, Integer.toString(i).getBytes(), value)));
            }
            for (Future<RecordMetadata> f : sent) {
                f.get();
            }
            System.out.println("{\"records\":" + records + ",\"bytes\":" + (long) records * value.length + "}");
        }
    }

    static void create(String bootstrap, String topic, int partitions, short rf) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, rf))).all().get();
            System.out.println("{\"created\":" + str(topic) + "}");
        }
    }

    static void describe(String bootstrap, String topic) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            StringBuilder out = new StringBuilder("{\"topic\":").append(str(topic)).append(",\"partitions\":[");
            for (TopicPartitionInfo p : d.partitions()) {
                out.append(p.partition() == 0 ? "" : ",")
                    .append("{\"partition\":").append(p.partition())
                    .append(",\"leader\":").append(p.leader() == null || p.leader().isEmpty() ? "null" : p.leader().id())
                    .append(",\"replicas\":").append(ids(p.replicas()))
                    .append(",\"isr\":").append(ids(p.isr())).append('}');
            }
            System.out.println(out.append("]}"));
        }
    }

    /** Sends one record to each partition at once and waits for every answer. */
    static void writeEach(String bootstrap, String topic, int timeoutMs) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        // A partition that cannot take the write within the timeout counts as not writable.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Integer.toString(timeoutMs));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Integer.toString(Math.min(timeoutMs, 30000)));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Integer.toString(timeoutMs));
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        List<Integer> written = new ArrayList<>();
        Map<Integer, String> failed = new TreeMap<>();
        Producer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        try {
            List<PartitionInfo> partitions = producer.partitionsFor(topic);
            Map<Integer, Future<RecordMetadata>> sent = new TreeMap<>();
            for (PartitionInfo info : partitions) {
                sent.put(info.partition(), producer.send(new ProducerRecord<>(topic, info.partition(), null, "probe-" + info.partition())));
            }
            // The producer expires a batch after the delivery timeout only once it can send at
            // all; an idempotent producer waiting for its producer id (which a broker cannot hand
            // out without ZooKeeper) never gets there, so the wait itself is bounded too.
            long deadline = System.currentTimeMillis() + timeoutMs + 5000;
            for (Map.Entry<Integer, Future<RecordMetadata>> e : sent.entrySet()) {
                try {
                    e.getValue().get(Math.max(0, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                    written.add(e.getKey());
                } catch (ExecutionException ex) {
                    failed.put(e.getKey(), ex.getCause().getClass().getSimpleName() + ": " + ex.getCause().getMessage());
                } catch (java.util.concurrent.TimeoutException ex) {
                    failed.put(e.getKey(), "no answer within " + timeoutMs + " ms");
                }
            }
        } finally {
            // Bounded for the same reason.
            producer.close(Duration.ofMillis(timeoutMs));
        }
        StringBuilder out = new StringBuilder("{\"written\":").append(written).append(",\"failed\":{");
        boolean first = true;
        for (Map.Entry<Integer, String> e : failed.entrySet()) {
            out.append(first ? "" : ",").append(str(e.getKey().toString())).append(':').append(str(e.getValue()));
            first = false;
        }
        System.out.println(out.append("}}"));
    }

    /** Every record of every partition, up to the end offsets read at the start. */
    static void readAll(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        // Only committed data, as an application reading with read_committed would see it.
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (Consumer<String, String> consumer = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = consumer.partitionsFor(topic, Duration.ofSeconds(20)).stream()
                .map(i -> new TopicPartition(topic, i.partition())).sorted(Comparator.comparingInt(TopicPartition::partition))
                .collect(Collectors.toList());
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> end = consumer.endOffsets(parts, Duration.ofSeconds(20));
            StringBuilder out = new StringBuilder("{\"records\":[");
            boolean first = true;
            long deadline = System.currentTimeMillis() + 60000;
            Set<TopicPartition> pending = new HashSet<>(parts);
            pending.removeIf(tp -> end.get(tp) == 0);
            while (!pending.isEmpty()) {
                if (System.currentTimeMillis() > deadline) {
                    throw new TimeoutException("partitions not read to their end offsets within 60 s: " + pending);
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    if (r.offset() < end.get(tp)) {
                        out.append(first ? "" : ",").append("[").append(r.partition()).append(',').append(r.offset())
                            .append(',').append(str(r.value())).append(']');
                        first = false;
                    }
                }
                pending.removeIf(tp -> consumer.position(tp) >= end.get(tp));
            }
            System.out.println(out.append("]}"));
        }
    }

    static Properties load(String file) throws Exception {
        Properties p = new Properties();
        try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(file), java.nio.charset.StandardCharsets.ISO_8859_1)) {
            p.load(r);
        }
        return p;
    }

    /**
     * The producer buffer, measured: a producer built from FILE alone (plus serializers) sends at a
     * steady RATE, each record numbered, and every send() call is timed (it returns at once while
     * the record fits in buffer.memory, and blocks up to max.block.ms when it does not). After
     * SECONDS the producer is closed, which waits for every record's answer; the topic is then read
     * back to its end offsets and every acknowledged number looked for.
     */
    static void timedSend(String file, String topic, int rate, int bytes, int seconds) throws Exception {
        Properties p = load(file);
        int total = rate * seconds;
        long[] block = new long[total];
        BitSet acked = new BitSet(total);
        java.util.concurrent.atomic.AtomicInteger failed = new java.util.concurrent.atomic.AtomicInteger();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        int thrown = 0;
        String firstThrown = "";
        long maxBlock = 0, maxBlockAt = 0;
        String pad = "x".repeat(Math.max(0, bytes - 11));
        long start = System.nanoTime();
        try (Producer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < total; i++) {
                long due = start + (long) i * 1_000_000_000L / rate;
                long now;
                while ((now = System.nanoTime()) < due) {
                    java.util.concurrent.locks.LockSupport.parkNanos(due - now);
                }
                final int id = i;
                long t0 = System.nanoTime();
                try {
                    producer.send(new ProducerRecord<>(topic, String.format("%010d|", i) + pad), (md, e) -> {
                        if (e == null) {
                            synchronized (acked) {
                                acked.set(id);
                            }
                        } else {
                            failed.incrementAndGet();
                            if (failures.size() < 5) {
                                failures.add(e.toString());
                            }
                        }
                    });
                } catch (Exception e) {
                    if (thrown++ == 0) {
                        firstThrown = e.toString();
                    }
                }
                block[i] = System.nanoTime() - t0;
                if (block[i] > maxBlock) {
                    maxBlock = block[i];
                    maxBlockAt = t0 - start;
                }
            }
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        // Read everything back, with a consumer that knows only the file's bootstrap servers.
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, p.getProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG));
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        BitSet seen = new BitSet(total);
        try (Consumer<String, String> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = consumer.partitionsFor(topic, Duration.ofSeconds(20)).stream()
                .map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toList());
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> end = consumer.endOffsets(parts, Duration.ofSeconds(20));
            Set<TopicPartition> pending = new HashSet<>(parts);
            pending.removeIf(tp -> end.get(tp) == 0);
            long deadline = System.currentTimeMillis() + 120000;
            while (!pending.isEmpty()) {
                if (System.currentTimeMillis() > deadline) {
                    throw new TimeoutException("partitions not read to their end offsets within 120 s: " + pending);
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    seen.set(Integer.parseInt(r.value().substring(0, 10)));
                }
                pending.removeIf(tp -> consumer.position(tp) >= end.get(tp));
            }
        }
        BitSet missing = (BitSet) acked.clone();
        missing.andNot(seen);
        long[] sorted = block.clone();
        Arrays.sort(sorted);
        java.util.function.LongUnaryOperator ms = n -> n / 1_000_000;
        System.out.println("{\"sent\":" + total + ",\"acked\":" + acked.cardinality() + ",\"failed\":" + failed.get()
            + ",\"thrown\":" + thrown + ",\"first_thrown\":" + str(firstThrown)
            + ",\"failures\":[" + failures.stream().map(Probe::str).collect(Collectors.joining(",")) + "]"
            + ",\"missing\":" + missing.cardinality() + ",\"read\":" + seen.cardinality()
            + ",\"seconds\":" + String.format("%.1f", elapsed)
            + ",\"block_ms\":{\"p50\":" + ms.applyAsLong(sorted[total / 2]) + ",\"p99\":" + ms.applyAsLong(sorted[total * 99 / 100])
            + ",\"max\":" + ms.applyAsLong(maxBlock) + ",\"max_at_s\":" + String.format("%.1f", maxBlockAt / 1e9)
            + ",\"max_after_first_second\":" + ms.applyAsLong(Arrays.stream(block).skip(Math.min(rate, total)).max().orElse(0))
            + ",\"over_100ms\":" + Arrays.stream(block).filter(b -> b > 100_000_000L).count() + "}}");
    }

    /** Builds the client from the file alone (plus serializers), so Kafka logs any key it does not know. */
    static void client(String kind, String file, String topic) throws Exception {
        Properties p = load(file);
        int partitions;
        switch (kind) {
            case "producer" -> {
                try (Producer<String, String> c = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                    partitions = c.partitionsFor(topic).size();
                }
            }
            case "consumer" -> {
                try (Consumer<String, String> c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
                    partitions = c.partitionsFor(topic, Duration.ofSeconds(20)).size();
                }
            }
            default -> {
                usage();
                return;
            }
        }
        System.out.println("{\"partitions\":" + partitions + "}");
    }

    static String ids(List<Node> nodes) {
        return nodes.stream().map(n -> Integer.toString(n.id())).collect(Collectors.joining(",", "[", "]"));
    }

    static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
